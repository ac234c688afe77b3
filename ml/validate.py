"""Stage `validate`: check the prepared data against the data contract.

Writes `reports/data_validation.json` in every case (the evidence), then fails with
DataContractError naming column, rule and a few failing rows when anything is violated, so DVC
stops here and no later stage sees invalid data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml.bundle import sha256_file
from ml.contract import (
    RULE_NAMES,
    Contract,
    Violation,
    check_data,
    column_stats,
    combine_splits,
    load_contract,
)
from ml.dataset import TEST_CSV, TRAIN_CSV, VALIDATION_REPORT, read_split, write_json
from ml.errors import DataContractError
from ml.params import load_params
from ml.runner import run_stage


def build_report(
    contract: Contract, splits: dict[str, Path], violations: list[Violation], stats: dict[str, Any]
) -> dict[str, Any]:
    """Content only (no timestamps): the report is copied into the content-addressed bundle."""
    return {
        "valid": not violations,
        "contract": {"path": contract.path.as_posix(), "sha256": contract.sha256},
        "data": {
            name: {"path": path.as_posix(), "sha256": sha256_file(path)}
            for name, path in splits.items()
        },
        "rules": list(RULE_NAMES),
        "violations": [violation.as_dict() for violation in violations],
        "columns": stats,
    }


def validate(
    contract_path: Path,
    target: str,
    splits: dict[str, Path],
    report_path: Path,
    max_examples: int = 5,
) -> str:
    contract = load_contract(contract_path)
    if contract.target.name != target:
        raise DataContractError(
            f"{contract_path}: target '{contract.target.name}' differs from prepare.target "
            f"'{target}'",
            hint="make validate.contract and prepare.target in params.yaml agree",
        )
    frames = {name: read_split(path) for name, path in splits.items()}
    frame = combine_splits(frames)
    violations = check_data(frame, contract, max_examples)
    report = build_report(contract, splits, violations, column_stats(frame, contract))
    for name, split in frames.items():
        report["data"][name]["rows"] = len(split)
    write_json(report_path, report)
    if violations:
        lines = "\n".join(f"  - {violation.describe()}" for violation in violations)
        raise DataContractError(
            f"the data breaks the contract {contract_path} "
            f"({len(violations)} violation(s); report: {report_path}):\n{lines}",
            hint="fix the source data or, if the data is right, the contract",
        )
    rows = sum(len(split) for split in frames.values())
    return (
        f"{rows} rows x {len(contract.columns())} columns satisfy {contract_path} "
        f"({len(report['rules'])} rules) -> {report_path}"
    )


def validate_from_params() -> str:
    params = load_params()
    return validate(
        Path(params.validate.contract),
        params.prepare.target,
        {"train": TRAIN_CSV, "test": TEST_CSV},
        VALIDATION_REPORT,
        params.validate.max_examples,
    )


def main() -> None:
    run_stage("validate", validate_from_params)


if __name__ == "__main__":
    main()
