"""S4 service layer: the use cases over the pure machines (`policies/`, `domain/`).

`router` (intake; `refusals`: its gates and recorded refusals) · `resends` (the same id again) ·
`execution` + `child_orders` (one parent driven to its outcome, its children at the venue;
`exec_deps`: what it is built from) · `manager` (background executions) · `recovery` (resume
stored executions) · `cancels` (`/cancel`) · `protection*` (brackets, OCO guardian, native OCO:
one interpreter) · `reconciler` · `fill_book` (the one booking path).
Orders and fills are read and written only through `adapters.orders_repo` (typed records).
"""
