"""AutoRTC: end-to-end QA for real-time voice agents.

Data flows one way: ``cases/`` → bots / browser → artifacts under
``output/runs/<run_id>/<case_id>/<trace_id>/`` → metrics → gates → report.
"""

__version__ = "0.1.0"
