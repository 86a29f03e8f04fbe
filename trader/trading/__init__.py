"""Trading: the pre-trade risk gate and the machinery that sends orders through it."""
