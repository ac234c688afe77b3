"""Pull-request previews: what a change between a base git ref and the checkout does.

Orchestration only: git says which files changed, DVC diffs params, metrics and plots, the real
Pulumi engine renders each render stack (no backend state) or previews each other stack, and
the gate judges each stack in-process. The modules, in the order data flows through them:

- `affected`   changed paths -> affected stacks and why
- `ml`         `dvc params diff` / `dvc metrics diff` / `dvc plots diff`, a stale side
               reproduced in a git worktree
- `charts`     DVC's plots -> Mermaid xychart-beta charts for the comment, SVG for the HTML
- `render`     a render stack's program rendered in a throwaway worktree and backend
- `manifests`  rendered trees diffed object by object (field paths), in-sync verdict, digest
- `infra`      the engine's preview events (`liftlock.engine.preview`) -> per-resource changes
- `gates`      `liftlock.gate.run_gate` in-process -> a verdict per stack
- `report`     the typed report (the JSON output is its `to_dict()`)
- `markdown`   the PR comment (with the hidden rendered record), kept under GitHub's size limit
- `run`        ties them together for `liftlock preview`
"""
