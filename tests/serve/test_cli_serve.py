"""``multibox serve`` on the command line: its options, and a one-line error when the extra is missing."""

from __future__ import annotations

import httpx

import multibox.serve
from multibox.cli import build_parser, main


def test_serve_defaults_to_loopback_and_the_documented_limits():
    args = build_parser().parse_args(["serve", "model.pt"])
    assert (args.path, args.host, args.port) == ("model.pt", "127.0.0.1", 8000)
    # no threshold given: the detector's own (tuned on validation by training)
    assert (args.max_upload_mb, args.max_megapixels, args.threshold) == (20.0, 50.0, None)


def test_missing_serve_extra_is_a_one_line_error(monkeypatch, capsys, bccd_checkpoint):
    monkeypatch.setattr(multibox.serve, "missing_dependencies", lambda: ["fastapi", "uvicorn"])
    assert main(["serve", str(bccd_checkpoint)]) == 2
    err = capsys.readouterr().err
    assert err == "multibox: error: serve needs fastapi, uvicorn: pip install 'multibox[serve]'\n"


def test_all_of_the_serve_extra_is_installed_here():
    assert multibox.serve.missing_dependencies() == []


def test_missing_model_file_is_a_one_line_error(capsys, tmp_path):
    assert main(["serve", str(tmp_path / "nothing.pt")]) == 1  # a file error
    err = capsys.readouterr().err
    assert err.startswith("multibox: error:") and "does not exist" in err and err.count("\n") == 1


def test_the_command_serves_the_checkpoint(live_server, bccd_checkpoint):
    health = httpx.get(f"{live_server.url}/healthz").json()
    assert health["model"] == {
        "name": bccd_checkpoint.name,
        "runtime": "TorchDetector",
        "class_names": ["Platelets", "RBC", "WBC"],
    }


def test_the_api_schema_is_served_and_nothing_loads_from_a_cdn(live_server):
    schema = httpx.get(f"{live_server.url}/openapi.json").json()
    assert set(schema["paths"]) == {"/v1/detect", "/healthz"}
    assert httpx.get(f"{live_server.url}/docs").status_code == 404  # FastAPI's docs page pulls in a CDN
