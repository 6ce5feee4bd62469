"""The ``hybrid_mount`` connection form in the UI (Admin > Connections > Add Connection): the hook's name as the
type, the mount fields with their labels, the standard fields hidden or relabelled, all as the provider info
(``conn-fields``, ``ui-field-behaviour``, ``hook-name``) declares them; read from it at test time."""

from __future__ import annotations

from typing import Any

#: The standard fields the form shows (provider-info name -> the UI's label) unless the behaviour hides them.
STANDARD_LABELS = {"description": "Description", "host": "Host", "login": "Login", "password": "Password",
                   "port": "Port", "schema": "Schema"}


def _mount_connection_type() -> dict[str, Any]:
    from airflow_hybrid.get_provider_info import get_provider_info

    (declared,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == "hybrid_mount"]
    return declared


def test_the_add_connection_form_shows_the_mount_fields_the_provider_declares(browser):
    declared = _mount_connection_type()
    hook_name = declared.get("hook-name")
    fields = declared.get("conn-fields") or {}
    behaviour = declared.get("ui-field-behaviour") or {}
    assert hook_name, f"the provider info declares no hook-name for hybrid_mount: {declared}"
    assert fields, f"the provider info declares no conn-fields (the mount fields) for hybrid_mount: {declared}"

    seen = browser.run("connection_form", typeLabel=hook_name)

    assert hook_name in seen["typeOptions"], (
        f"expected a connection type option {hook_name!r} (the hook's name), the options for that text are "
        f"{seen['typeOptions']}; screenshots {seen['screenshots']}"
    )
    assert hook_name in seen["typeFieldText"], f"expected {hook_name!r} chosen, the field shows {seen['typeFieldText']}"

    extra = seen["sections"]["Extra Fields"]
    expected_extra = [spec.get("label") or name for name, spec in fields.items()]
    assert extra is not None, f"expected an Extra Fields section with {expected_extra}, the form has none"
    assert [f["label"] for f in extra] == expected_extra, (
        f"expected the mount fields {expected_extra} (conn-fields' labels, in order), the form shows "
        f"{[f['label'] for f in extra]}; screenshot {seen['screenshots'][-1]}"
    )

    hidden = set(behaviour.get("hidden-fields", []))
    relabeling = behaviour.get("relabeling", {})
    expected_standard = sorted(relabeling.get(name, label) for name, label in STANDARD_LABELS.items()
                               if name not in hidden)
    standard = {f["label"]: f for f in seen["sections"]["Standard Fields"] or []}
    assert sorted(standard) == expected_standard, (
        f"expected the standard fields {expected_standard} (hidden {sorted(hidden)}, relabelled {relabeling}), "
        f"the form shows {sorted(standard)}; screenshot {seen['screenshots'][-2]}"
    )
    for name, placeholder in behaviour.get("placeholders", {}).items():
        label = relabeling.get(name, STANDARD_LABELS.get(name))
        if label in standard:
            assert standard[label]["placeholder"] == placeholder, (
                f"expected the placeholder {placeholder!r} in {label!r}, it shows {standard[label]['placeholder']!r}"
            )
