from multibox import __version__
from multibox.cli import main


def test_inspect_model_prints_the_anchor_table(capsys):
    assert main(["inspect", "model", "vgg16_reduced", "--data-shape", "300"]) == 0
    out = capsys.readouterr().out
    assert "8732" in out and "26,285,486" in out and "relu4_3" in out


def test_unknown_network_is_a_one_line_error(capsys):
    assert main(["inspect", "model", "alexnet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("multibox: error: unknown network 'alexnet'") and err.count("\n") == 1


def test_demo_runs_and_finds_the_three_objects(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "SSD300 anchors: 8732" in out and "3 detections after NMS" in out


def test_no_command_prints_help_with_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("quickstart", "train", "evaluate", "detect", "export", "data", "inspect"):
        assert command in out
    assert __version__
