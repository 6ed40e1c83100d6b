"""The demo's security chapter: the same store behind a server with auth, two projects and their tokens.

A partner team gets an editor token for its own project: it creates an experiment there, cannot see the
demo's model (a guessed name answers 404, like a missing one), cannot read the audit trail that spans every
project, and its changes are signed with its token's name in the audit trail. A viewer token cannot write.
Retention keeps the partner's traces 7 days and everyone else's 30 (a dry run shows what would go), and the
champion goes on legal hold so nothing can delete it.
"""

from __future__ import annotations

from typing import Any

PARTNER = "partner-lab"


def run_security_chapter(client: Any, model: str, champion: int) -> dict[str, Any]:
    import httpx

    from arsenale.demo_serving import _Server
    from arsenale.server.app import create_app

    print("Security: a server with auth, the demo's project and a partner's project")
    tokens = client.tokens
    _, partner = tokens.create("partner-ci", role="editor", project=PARTNER, expires="1d")
    _, auditor = tokens.create("auditor", role="viewer", project="*", expires="1d")
    app = create_app(client, auth=True)
    with _Server(app, ready_path="/health") as server, httpx.Client(base_url=server.url, timeout=30) as http:
        as_partner = {"Authorization": f"Bearer {partner}"}
        as_auditor = {"Authorization": f"Bearer {auditor}"}
        made = http.post("/api/v1/experiments", json={"name": f"{PARTNER}-baseline"}, headers=as_partner)
        made.raise_for_status()
        seen = [e["name"] for e in http.get("/api/v1/experiments", headers=as_partner).json()]
        guessed = http.get(f"/api/v1/models/{model}", headers=as_partner)
        audit = http.get("/api/v1/audit", headers=as_partner)
        write = http.post("/api/v1/experiments", json={"name": "auditor-was-here"}, headers=as_auditor)
        anonymous = http.get("/api/v1/experiments")
    experiment = client.tracking.get_experiment_by_name(f"{PARTNER}-baseline")
    print(f"  partner-ci (editor, project {PARTNER!r}) created experiment {experiment.name!r} in project "
          f"{experiment.project!r}; it lists {seen}")
    print(f"  partner-ci asking for model {model!r}: {guessed.status_code}; for the audit trail: "
          f"{audit.status_code} ({audit.json()['message']})")
    print(f"  auditor (viewer) trying to write: {write.status_code}; without a token: {anonymous.status_code}")
    signed = [e for e in client.audit.entries(action="experiment.create")
              if e.entity_id == experiment.experiment_id]
    print(f"  audit trail: experiment.create by {signed[-1].actor if signed else '?'}")

    retention = client.retention
    retention.set_policy("traces", "30d")
    retention.set_policy("traces", "7d", project=PARTNER)
    dry = retention.apply(dry_run=True)
    counts = ", ".join(f"{r.project}/{r.kind}: {r.deleted.get('traces', 0)} traces" for r in dry.results
                       if r.kind == "traces")
    print(f"  retention: traces kept 30 days, {PARTNER} 7 days; dry run today: {counts}")
    client.registry.set_legal_hold(model, champion, reason="demo: keep the champion for the audit")
    print(f"  legal hold on {model} v{champion}: deleting it is refused while held "
          f"(arsenale models holds; dashboard /security)")
    return {"partner_project": experiment.project, "partner_lists": seen, "guessed_model": guessed.status_code,
            "audit_status": audit.status_code, "viewer_write": write.status_code,
            "anonymous": anonymous.status_code, "signed_by": signed[-1].actor if signed else None}
