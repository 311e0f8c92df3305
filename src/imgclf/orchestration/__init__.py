"""Orchestration: the DVC side (dvcrun: stages through `dvc repro`, data versions) and the
Prefect side (flowrun: run and serve the flow; flowreports: its artifacts), and a clean stop
on signals for both (stopping)."""
