"""Policy as code: rules as plain functions (`policies.rules`), gates per stack
(`policies/gates.yaml`, `policies.gates`), the CrossGuard pack (`PulumiPolicy.yaml`, `__main__.py`,
`policies.crossguard`) and the offline evaluation (`policies.evaluate`)."""
