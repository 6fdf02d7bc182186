"""``fcnn summary`` and ``fcnn train --checkpoint-dir/--resume`` on the command line."""

import json

import numpy as np
import pytest

from fcnn import checkpoint, cli


def run_main(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# ----------------------------------------------------------------- fcnn summary

def test_summary_resnet18_totals(capsys):
    code, out, _ = run_main(capsys, "summary", "--model", "resnet18", "--input", "3,224,224")
    assert code == 0
    # torchvision's resnet18: 11,689,512 params; 1.814 GMACs at 224×224
    assert "Total params: 11,689,512" in out and "Total buffers: 9,620" in out
    assert "Total FLOPs: 3,628,146,688" in out
    assert "layer4.1.conv2" in out and "(1, 512, 7, 7)" in out and "(1, 1000)" in out


def test_summary_markdown_adapts_channels(capsys):
    code, out, _ = run_main(capsys, "summary", "--model", "lenet5", "--input", "3,32,32", "--markdown",
                            "--num-classes", "7")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("| Layer | Type | Output shape | Params")
    # conv1 sees 3 channels: 6·(3·5·5) + 6; the head has 7 outputs: 84·7 + 7
    assert "| conv1 | Conv2d | (1, 6, 28, 28) | 456 |" in out
    assert "| fc3 | Linear | (1, 7) | 595 |" in out


@pytest.mark.parametrize("argv,names", [
    (["--model", "resnet19", "--input", "3,224,224"], ["--model", "'resnet19'", "resnet18, resnet34"]),
    (["--model", "resnet18", "--input", "224,224"], ["--input 224,224", "has 2 dims"]),
    (["--model", "resnet18", "--input", "1,3,224,224"], ["--input 1,3,224,224", "has 4 dims"]),
    (["--model", "lenet5", "--input", "1,a,28"], ["--input", "'1,a,28'"]),
    (["--model", "lenet5", "--input", "1,0,28"], ["--input", "'1,0,28'"]),
    (["--model", "unet", "--input", "1,4,4"], ["--input 1,4,4", "too small"]),
    (["--model", "vgg", "--input", "3,32,32", "--batch-size", "0"], ["--batch-size", "0"]),
])
def test_summary_errors_exit_2_and_name_the_argument(capsys, argv, names):
    code, out, err = run_main(capsys, "summary", *argv)
    assert code == 2 and out == ""
    assert err.startswith("fcnn summary: error: ")
    for name in names:
        assert name in err, err


def test_summary_missing_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["summary", "--model", "vgg"])
    assert e.value.code == 2 and "--input" in capsys.readouterr().err
