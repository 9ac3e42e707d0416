"""Flow control: named limits on job types, pauses and snoozes, decided in the claim.

``limits`` reads the limits and plans from settings and gives each job its budgets;
``models`` holds the budgets' state, the pauses, the per-tenant overrides and the audit
log; ``claim`` admits claimed jobs within their budgets; ``services`` pauses, resumes and
overrides (audit-logged); ``selectors``, ``sql`` and ``report`` show each budget's use;
``admin`` is the staff's side. docs/flow.md is the guide.
"""
