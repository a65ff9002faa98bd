"""Figures for the Pipeline screen and `crm-tui report pipeline`: pure functions over the
store's records and the audit rows, no Textual. Each returns a plain dataclass with
`to_json()` and `table()` (headers and rows, the CSV and the screen's table alike).

- `pipeline_by_stage`: deals per shared stage (or each vendor's own stage) and source;
- `closings_by_month`: deals closing in each of the past 12 months and the next 6, with GCI
  where the source carries a commission;
- `lead_flow`: new contacts per week, by source and by shared stage, the last 26 weeks;
- `sync_health`: per source, its last 30 runs and its rate budget.

"Now" is always a parameter: a test or a snapshot fixes it.
"""

from crm_tui.insights.deals import (
    ClosingFigures,
    DealTable,
    StageFigures,
    closings_by_month,
    pipeline_by_stage,
)
from crm_tui.insights.health import SyncHealth, sync_health
from crm_tui.insights.leads import LeadFlow, lead_flow
from crm_tui.insights.report import CHARTS, Pipeline, build_pipeline
from crm_tui.insights.table import Table

__all__ = [
    "CHARTS",
    "ClosingFigures",
    "DealTable",
    "LeadFlow",
    "Pipeline",
    "StageFigures",
    "SyncHealth",
    "Table",
    "build_pipeline",
    "closings_by_month",
    "lead_flow",
    "pipeline_by_stage",
    "sync_health",
]
