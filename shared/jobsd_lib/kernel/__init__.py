"""The kernel: pure scheduling decisions. Functions take time and facts, return data."""
