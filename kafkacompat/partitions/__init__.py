"""Partitions this broker hosts: log, producer state, leader epochs, high watermark, wake-ups."""
