"""PyTorch eager: the same networks as torch modules, same initial weights as the lax reference."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as TF

from benchmarks import impl_lax, spec


class LeNet(tnn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = tnn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = tnn.Conv2d(6, 16, 5)
        self.fc1 = tnn.Linear(400, 120)
        self.fc2 = tnn.Linear(120, 84)
        self.fc3 = tnn.Linear(84, 10)

    def forward(self, x):
        x = TF.max_pool2d(TF.relu(self.conv1(x)), 2)
        x = TF.max_pool2d(TF.relu(self.conv2(x)), 2)
        x = x.flatten(1)
        return self.fc3(TF.relu(self.fc2(TF.relu(self.fc1(x)))))


class BNCNN(tnn.Module):
    def __init__(self):
        super().__init__()
        self.order = []
        i = 0
        for item in spec.BNCNN_CHANNELS:
            if item == "pool":
                self.order.append(None)
                continue
            setattr(self, f"conv{i}", tnn.Conv2d(*item, 3, padding=1, bias=False))
            setattr(self, f"bn{i}", tnn.BatchNorm2d(item[1]))
            self.order.append(i)
            i += 1
        self.fc = tnn.Linear(64 * 8 * 8, 10)

    def forward(self, x):
        for i in self.order:
            x = TF.max_pool2d(x, 2) if i is None else TF.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
        return self.fc(x.flatten(1))


class BasicBlock(tnn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(cout)
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout))

    def forward(self, x):
        out = TF.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return TF.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18(tnn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = tnn.BatchNorm2d(64)
        cin = 64
        for li, cout in enumerate((64, 128, 256, 512), 1):
            stride = 1 if li == 1 else 2
            setattr(self, f"layer{li}", tnn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.fc = tnn.Linear(512, 1000)

    def forward(self, x):
        x = TF.max_pool2d(TF.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        for li in range(1, 5):
            x = getattr(self, f"layer{li}")(x)
        return self.fc(x.mean((2, 3)))


def build(model: str, seed: int = 0) -> tnn.Module:
    net = {"lenet": LeNet, "bncnn": BNCNN, "resnet18": ResNet18}[model]()
    p, s = impl_lax.init(model, seed)
    sd = {k: torch.from_numpy(np.array(v)) for k, v in {**p, **s}.items()}
    missing, unexpected = net.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    return net.train()


def device() -> torch.device:
    """CUDA when present (the GPU run), else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def setup(model: str, batch: int, seed: int = 0, dtype="float32"):
    """One step of ``torch.optim.SGD``; ``dtype='bfloat16'`` runs the forward under
    ``torch.autocast`` (float32 params, momentum and BN statistics: torch's mixed precision)."""
    dev = device()
    if dev.type == "cuda":
        # Let cuDNN pick its fastest algorithms (XLA autotunes too) and use TF32
        # for float32 matmuls as XLA's default precision does on this hardware.
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    x, y = (torch.from_numpy(a).long() if a.dtype == np.int32 else torch.from_numpy(a) for a in spec.data(model, batch, seed))
    x, y = x.to(dev), y.to(dev)
    net = build(model, seed).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=spec.LR, momentum=spec.MOMENTUM)
    half = str(dtype) in ("bfloat16", "bf16")
    if not half and str(dtype) != "float32":
        raise TypeError(f"impl_torch: dtype must be float32 or bfloat16, got {dtype!r}")

    def run():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=half):
            logits = net(x)
        loss = TF.cross_entropy(logits.float(), y)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()  # the timer must see the step finish, as block_until_ready does for JAX
        return loss.detach()

    return run
