"""The delivery engine: the database is the truth, RQ jobs do the sending.

A delivery row is committed with what caused it. Committing wakes the workers
(:mod:`.kick`); a relay in every worker also finds due and stuck rows by itself, so
a lost wake-up, a Redis restart or a killed worker delays a delivery but never loses it.
"""
