"""A deliberately naive loop CNN, in the style of report 000's NumPy implementation.

Convolution forward and backward walk batch → out-channel → in-channel → i → j in five nested
Python loops and use NumPy only for the K×K window product-sum of each step; max-pooling loops
over every window and stores the arg-max coordinates. Activations, the loss and Adam are
vectorised, as in the report. Every convolution returns its input gradient, including the
first one, because the report's layer does not know where it sits in the network.

This exists only as the "before" point of ``bench/bench_digits6x6.py``; it is not part of
cnnx. Everything is float32.
"""

from __future__ import annotations

import numpy as np


class LoopConv2D:
    """Valid (no padding), stride-1 convolution. Weights ``(C_out, C_in, K, K)`` float32."""

    def __init__(self, c_in: int, c_out: int, k: int, rng: np.random.Generator) -> None:
        fan_in = c_in * k * k
        self.W = (rng.standard_normal((c_out, c_in, k, k)) * fan_in**-0.5).astype(np.float32)
        self.b = np.zeros(c_out, dtype=np.float32)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)
        self.k = k
        self.x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``(N, C_in, H, W)`` float32 → ``(N, C_out, H-K+1, W-K+1)`` float32."""
        self.x = x
        n_batch, c_in, h, w = x.shape
        c_out, k = self.W.shape[0], self.k
        oh, ow = h - k + 1, w - k + 1
        out = np.zeros((n_batch, c_out, oh, ow), dtype=np.float32)
        for n in range(n_batch):
            for o in range(c_out):
                for c in range(c_in):
                    w_oc = self.W[o, c]
                    for i in range(oh):
                        for j in range(ow):
                            out[n, o, i, j] += np.sum(x[n, c, i : i + k, j : j + k] * w_oc)
                out[n, o] += self.b[o]
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """``dout`` ``(N, C_out, OH, OW)`` → ``dx`` ``(N, C_in, H, W)``; fills ``dW``, ``db``."""
        x = self.x
        n_batch, c_in = x.shape[:2]
        c_out, k = self.W.shape[0], self.k
        oh, ow = dout.shape[2:]
        dx = np.zeros_like(x)
        self.dW[...] = 0
        self.db[...] = dout.sum(axis=(0, 2, 3))
        for n in range(n_batch):
            for o in range(c_out):
                for c in range(c_in):
                    w_oc = self.W[o, c]
                    dw_oc = self.dW[o, c]
                    for i in range(oh):
                        for j in range(ow):
                            g = dout[n, o, i, j]
                            dw_oc += g * x[n, c, i : i + k, j : j + k]
                            dx[n, c, i : i + k, j : j + k] += g * w_oc
        return dx


class LoopMaxPool2x2:
    """2×2 max-pool, stride 2; remembers the arg-max position of every window."""

    def __init__(self) -> None:
        self.argmax: np.ndarray | None = None
        self.in_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``(N, C, H, W)`` float32 → ``(N, C, H//2, W//2)`` float32."""
        n_batch, chans, h, w = x.shape
        oh, ow = h // 2, w // 2
        out = np.empty((n_batch, chans, oh, ow), dtype=np.float32)
        argmax = np.empty((n_batch, chans, oh, ow, 2), dtype=np.int64)
        for n in range(n_batch):
            for c in range(chans):
                for i in range(oh):
                    for j in range(ow):
                        window = x[n, c, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
                        u, v = divmod(int(np.argmax(window)), 2)
                        out[n, c, i, j] = window[u, v]
                        argmax[n, c, i, j] = (2 * i + u, 2 * j + v)
        self.argmax, self.in_shape = argmax, x.shape
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Route each window's gradient to its arg-max; ``(N, C, OH, OW)`` → ``(N, C, H, W)``."""
        dx = np.zeros(self.in_shape, dtype=np.float32)
        n_batch, chans, oh, ow = dout.shape
        for n in range(n_batch):
            for c in range(chans):
                for i in range(oh):
                    for j in range(ow):
                        p, q = self.argmax[n, c, i, j]
                        dx[n, c, p, q] = dout[n, c, i, j]
        return dx


class Sigmoid:
    def __init__(self) -> None:
        self.y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.y = np.float32(1.0) / (np.float32(1.0) + np.exp(-x))
        return self.y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self.y * (np.float32(1.0) - self.y)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy of ``(N, K)`` float32 logits and ``(N,)`` int labels.

    Returns:
        ``(loss, dlogits)`` with ``dlogits`` ``(N, K)`` float32 = (softmax - onehot) / N.
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs = exp / exp.sum(axis=1, keepdims=True)
    n = logits.shape[0]
    rows = np.arange(n)
    loss = float(-np.mean(np.log(probs[rows, labels] + np.float32(1e-12))))
    dlogits = probs.copy()
    dlogits[rows, labels] -= np.float32(1.0)
    dlogits /= np.float32(n)
    return loss, dlogits


class Adam:
    """Adam with bias correction, updating ``(param, grad)`` array pairs in place."""

    def __init__(
        self,
        pairs: list[tuple[np.ndarray, np.ndarray]],
        lr: float,
        beta1: float,
        beta2: float,
        eps: float = 1e-8,
    ) -> None:
        self.pairs = pairs
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = [np.zeros_like(p) for p, _ in pairs]
        self.v = [np.zeros_like(p) for p, _ in pairs]
        self.t = 0

    def step(self) -> None:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        corr1 = 1.0 - b1**self.t
        corr2 = 1.0 - b2**self.t
        for (p, g), m, v in zip(self.pairs, self.m, self.v, strict=True):
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * g * g
            p -= self.lr * (m / corr1) / (np.sqrt(v / corr2) + self.eps)


class LoopSimpleCNN:
    """Report 000's SimpleCNN: ``(N, 1, 6, 6)`` float32 → ``(N, 3)`` logits.

    Conv 3×3 1→3, Sigmoid, MaxPool 2×2, Conv 2×2 3→3, Sigmoid, Flatten. Weights are drawn
    from ``numpy.random.default_rng(seed)`` conv1 then conv2, std 1/sqrt(fan_in), which is the
    same stream ``baselines.torch_models.build_simple_cnn(seed)`` and
    ``cnnx.models.get("simple_cnn", seed=seed)`` use, so all three start equal.
    """

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.conv1 = LoopConv2D(1, 3, 3, rng)
        self.act1 = Sigmoid()
        self.pool = LoopMaxPool2x2()
        self.conv2 = LoopConv2D(3, 3, 2, rng)
        self.act2 = Sigmoid()

    def params(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(layer.W, layer.dW) for layer in (self.conv1, self.conv2)] + [
            (layer.b, layer.db) for layer in (self.conv1, self.conv2)
        ]

    def forward(self, x: np.ndarray) -> np.ndarray:
        h = self.act1.forward(self.conv1.forward(x))
        h = self.act2.forward(self.conv2.forward(self.pool.forward(h)))
        return h.reshape(h.shape[0], -1)

    def backward(self, dlogits: np.ndarray) -> None:
        g = self.act2.backward(dlogits.reshape(-1, 3, 1, 1))
        g = self.act1.backward(self.pool.backward(self.conv2.backward(g)))
        self.conv1.backward(g)


def make_loop_trainer(seed: int, lr: float, beta1: float, beta2: float):
    """Build a LoopSimpleCNN with Adam; return ``step(X, y) -> loss`` (float)."""
    model = LoopSimpleCNN(seed)
    opt = Adam(model.params(), lr=lr, beta1=beta1, beta2=beta2)

    def step(x: np.ndarray, y: np.ndarray) -> float:
        loss, dlogits = softmax_cross_entropy(model.forward(x), y)
        model.backward(dlogits)
        opt.step()
        return loss

    return step
