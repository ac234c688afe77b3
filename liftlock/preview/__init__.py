"""Pull-request previews: what a change between a base git ref and the checkout does.

Orchestration only: git says which files changed, DVC diffs params and metrics, the real Pulumi
engine previews each affected stack with the policy pack, `liftlock gate` gives the verdicts.
The modules, in the order data flows through them:

- `affected`  changed paths -> affected stacks and why
- `ml`        `dvc params diff` / `dvc metrics diff`, base evaluated in a git worktree
- `infra`     `pulumi preview --json` (+ its event log for policy events) -> per-resource changes
- `gates`     `liftlock gate <stack> --json` -> a verdict per stack
- `report`    the typed report (the JSON output is its `to_dict()`)
- `markdown`  the PR comment, kept under GitHub's size limit
- `run`       ties them together for `liftlock preview`
"""
