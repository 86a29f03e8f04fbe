"""Strategies: the contract (base), bar aggregation, plugins, sizing and the live runner."""

from trader.strategy.base import NoParams, Sizing, Strategy, StrategyConfig

__all__ = ["NoParams", "Sizing", "Strategy", "StrategyConfig"]
