"""Broker adapters: the bridges between the platform and the brokers it trades through."""
