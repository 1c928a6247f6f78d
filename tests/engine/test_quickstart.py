import json

from multibox.cli import main


def test_quickstart_runs_end_to_end_and_leaves_its_files(tmp_path, capsys, monkeypatch):
    # The real quick start trains for minutes; here the same pipeline runs one short epoch on a few images.
    from multibox.engine import quickstart

    small = quickstart.QUICKSTART.replace(
        train_data="shapes:24", val_data="shapes:12", epochs=1, batch_size=8, data_shape=64, num_workers=0
    )
    monkeypatch.setattr(quickstart, "QUICKSTART", small)
    assert main(["quickstart", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "quickstart: VOC07 mAP" in out and str(tmp_path) in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["epochs"] == 1 and 0.0 <= summary["mAP_voc07"] <= 1.0
    assert summary["checkpoint"].endswith(".pt")
    for name in ("val_detections.jpg", "loss.png", "map.png", "log.csv"):
        assert (tmp_path / name).is_file(), name
    assert len(list((tmp_path / "val_detections").glob("*.jpg"))) == 12
