"""The local GCP server's Vertex AI and Notebooks behaviour, through google-auth's
AuthorizedSession with the generated service-account key: long-running operations done on a
later poll, deployed-model ids that change on redeploy, the traffic split kept as the API
documents, Workbench state transitions."""

from __future__ import annotations

from typing import Any

import pytest
from google.auth.transport.requests import AuthorizedSession

from janitor.clouds.gcp import session as gcp
from janitor.devserver.gcp import GcpDevServer

pytestmark = pytest.mark.integration

PROJECT = "example-project"
ENDPOINT = f"projects/{PROJECT}/locations/us-central1/endpoints/ep"
MODEL: dict[str, Any] = {
    "model": f"projects/{PROJECT}/locations/us-central1/models/42",
    "displayName": "m",
    "dedicatedResources": {
        "machineSpec": {
            "machineType": "g2-standard-8",
            "acceleratorType": "NVIDIA_L4",
            "acceleratorCount": 1,
        },
        "minReplicaCount": 1,
        "maxReplicaCount": 2,
    },
}


@pytest.fixture
def api(gcp_env: GcpDevServer) -> AuthorizedSession:
    return gcp.authorized_session(gcp.load_credentials())


def vertex(path: str) -> str:
    return f"{gcp.base_url('aiplatform', 'us-central1')}/v1/{path}"


def finish(api: AuthorizedSession, url: str, operation: dict[str, Any]) -> dict[str, Any]:
    """Poll an LRO until done; the first poll is never done (operation_polls=2)."""
    assert not operation.get("done")
    polls = []
    for _ in range(5):
        polled: dict[str, Any] = api.get(f"{url}/{operation['name']}").json()
        polls.append(polled.get("done", False))
        if polled.get("done"):
            assert polls[0] is False
            return polled
    raise AssertionError("the operation never finished")


def test_locations_and_endpoint_paging(gcp_env: GcpDevServer, api: AuthorizedSession) -> None:
    gcp_env.set_locations(PROJECT, ["us-central1", "europe-west4"])
    locations = api.get(vertex(f"projects/{PROJECT}/locations")).json()
    assert [loc["locationId"] for loc in locations["locations"]] == ["us-central1", "europe-west4"]
    for index in range(5):
        gcp_env.add_endpoint(PROJECT, "us-central1", f"ep-{index}", deployed_models=[MODEL])
    gcp_env.add_endpoint(PROJECT, "europe-west4", "elsewhere")
    names: list[str] = []
    params: dict[str, str] = {"pageSize": "2"}
    while True:
        page = api.get(vertex(f"projects/{PROJECT}/locations/us-central1/endpoints"), params=params)
        names.extend(e["displayName"] for e in page.json()["endpoints"])
        if "nextPageToken" not in page.json():
            break
        params["pageToken"] = page.json()["nextPageToken"]
    assert names == [f"ep-{i}" for i in range(5)]
    assert gcp_env.calls["aiplatform.endpoints.list"] == 3


def test_undeploy_then_redeploy_gets_a_new_id_and_the_split(
    gcp_env: GcpDevServer, api: AuthorizedSession
) -> None:
    seeded = gcp_env.add_endpoint(PROJECT, "us-central1", "ep", deployed_models=[MODEL])
    old_id = seeded["deployedModels"][0]["id"]
    assert seeded["trafficSplit"] == {old_id: 100}

    undeploy = api.post(vertex(f"{ENDPOINT}:undeployModel"), json={"deployedModelId": old_id})
    assert undeploy.status_code == 200
    assert "deployedModels" in api.get(vertex(ENDPOINT)).json()  # not yet: the LRO runs
    done = finish(api, gcp.base_url("aiplatform", "us-central1") + "/v1", undeploy.json())
    assert "error" not in done
    endpoint = api.get(vertex(ENDPOINT)).json()
    assert "deployedModels" not in endpoint
    assert "trafficSplit" not in endpoint

    deploy = api.post(
        vertex(f"{ENDPOINT}:deployModel"),
        json={"deployedModel": MODEL, "trafficSplit": {"0": 100}},
    )
    done = finish(api, gcp.base_url("aiplatform", "us-central1") + "/v1", deploy.json())
    new_id = done["response"]["deployedModel"]["id"]
    assert new_id != old_id
    endpoint = api.get(vertex(ENDPOINT)).json()
    assert endpoint["trafficSplit"] == {new_id: 100}
    assert endpoint["deployedModels"][0]["dedicatedResources"] == MODEL["dedicatedResources"]


def test_deploy_without_a_traffic_split_gets_no_traffic(
    gcp_env: GcpDevServer, api: AuthorizedSession
) -> None:
    gcp_env.add_endpoint(PROJECT, "us-central1", "ep")
    deploy = api.post(vertex(f"{ENDPOINT}:deployModel"), json={"deployedModel": MODEL})
    finish(api, gcp.base_url("aiplatform", "us-central1") + "/v1", deploy.json())
    endpoint = api.get(vertex(ENDPOINT)).json()
    assert len(endpoint["deployedModels"]) == 1
    assert endpoint["trafficSplit"] == {}


def test_traffic_rules(gcp_env: GcpDevServer, api: AuthorizedSession) -> None:
    seeded = gcp_env.add_endpoint(
        PROJECT, "us-central1", "ep", deployed_models=[MODEL, MODEL | {"displayName": "b"}]
    )
    first, second = (m["id"] for m in seeded["deployedModels"])
    assert seeded["trafficSplit"] == {first: 100}
    # a model that still has traffic cannot go unless the split moves it
    refused = api.post(vertex(f"{ENDPOINT}:undeployModel"), json={"deployedModelId": first})
    assert refused.status_code == 400
    assert refused.json()["error"]["status"] == "FAILED_PRECONDITION"
    bad_split = api.post(
        vertex(f"{ENDPOINT}:deployModel"), json={"deployedModel": MODEL, "trafficSplit": {"0": 50}}
    )
    assert bad_split.status_code == 400
    moved = api.post(
        vertex(f"{ENDPOINT}:undeployModel"),
        json={"deployedModelId": first, "trafficSplit": {second: 100}},
    )
    finish(api, gcp.base_url("aiplatform", "us-central1") + "/v1", moved.json())
    assert api.get(vertex(ENDPOINT)).json()["trafficSplit"] == {second: 100}


def test_a_vertex_operation_that_ends_in_error(
    gcp_env: GcpDevServer, api: AuthorizedSession
) -> None:
    gcp_env.add_endpoint(PROJECT, "us-central1", "ep")
    gcp_env.fail_next_operation(ENDPOINT, code="FAILED_PRECONDITION", message="quota")
    deploy = api.post(
        vertex(f"{ENDPOINT}:deployModel"), json={"deployedModel": MODEL, "trafficSplit": {"0": 100}}
    )
    done = finish(api, gcp.base_url("aiplatform", "us-central1") + "/v1", deploy.json())
    assert done["error"] == {"code": 9, "message": "quota"}
    assert "deployedModels" not in api.get(vertex(ENDPOINT)).json()


def test_workbench_stop_and_start(gcp_env: GcpDevServer, api: AuthorizedSession) -> None:
    gcp_env.add_workbench(PROJECT, "us-east1-b", "nb", metadata={"idle-timeout-seconds": "0"})
    gcp_env.add_workbench(PROJECT, "europe-west4-a", "other")
    base = f"{gcp.base_url('notebooks')}/v2"
    listed = api.get(f"{base}/projects/{PROJECT}/locations/-/instances").json()
    assert sorted(i["name"].rsplit("/", 1)[-1] for i in listed["instances"]) == ["nb", "other"]
    zonal = api.get(f"{base}/projects/{PROJECT}/locations/us-east1-b/instances").json()
    assert [i["gceSetup"]["metadata"]["idle-timeout-seconds"] for i in zonal["instances"]] == ["0"]

    name = f"projects/{PROJECT}/locations/us-east1-b/instances/nb"
    stop = api.post(f"{base}/{name}:stop", json={})
    assert api.get(f"{base}/{name}").json()["state"] == "STOPPING"
    done = finish(api, base, stop.json())
    assert done["response"]["state"] == "STOPPED"
    assert gcp_env.workbench(PROJECT, "us-east1-b", "nb")["state"] == "STOPPED"  # type: ignore[index]
    start = api.post(f"{base}/{name}:start", json={})
    finish(api, base, start.json())
    assert api.get(f"{base}/{name}").json()["state"] == "ACTIVE"
