"""Small shared vocabulary every package may import: timeframes, symbols, UTC timestamps.

Nothing here imports another ``graphwiz_trader`` package except :mod:`graphwiz_trader.errors`.
"""
