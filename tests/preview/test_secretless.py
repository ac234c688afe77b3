"""Fork previews: secrets in the stack file and in the state become named placeholders."""

from __future__ import annotations

import yaml

from liftlock.engine.preview import SECRET_SIGNATURE
from liftlock.preview.secretless import (
    SECRET_MARKER,
    UNKNOWN_SECRET_PLACEHOLDER,
    config_without_secrets,
    secretless_deployment,
)

STACK_FILE = """\
# staging: comments are fine
config:
  liftlock:replicas: 2
  liftlock:registry:
    user: bot
    token:
      secure: v1:abc:def
  other:token:
    secure: v1:ghi:jkl
encryptionsalt: v1:salt
"""


def test_secure_values_at_any_depth_become_placeholders_and_the_salt_goes():
    text, found = config_without_secrets(STACK_FILE)
    document = yaml.safe_load(text)
    assert found == ["liftlock:registry.token", "other:token"]
    assert document["config"]["liftlock:registry"] == {
        "user": "bot",
        "token": UNKNOWN_SECRET_PLACEHOLDER,
    }
    assert document["config"]["liftlock:replicas"] == 2
    assert "encryptionsalt" not in document and "secure" not in text


def test_state_secrets_are_blanked_and_named_and_the_provider_dropped():
    secret = {SECRET_SIGNATURE: SECRET_MARKER, "ciphertext": "v1:zzz"}
    exported = {
        "version": 3,
        "deployment": {
            "secrets_providers": {"type": "passphrase", "state": {"salt": "v1:x"}},
            "resources": [
                {
                    "urn": "urn:pulumi:prod::liftlock::kubernetes:core/v1:Secret::registry",
                    "inputs": {"stringData": {"token": secret}},
                    "outputs": {"data": [secret]},
                }
            ],
        },
    }
    deployment, unknown = secretless_deployment(exported)
    assert "secrets_providers" not in deployment["deployment"]
    resource = deployment["deployment"]["resources"][0]
    assert "ciphertext" not in str(resource)
    assert (
        resource["inputs"]["stringData"]["token"]["plaintext"] == f'"{UNKNOWN_SECRET_PLACEHOLDER}"'
    )
    assert unknown == [
        "state: registry.inputs.stringData.token",
        "state: registry.outputs.data[0]",
    ]
