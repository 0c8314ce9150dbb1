"""The vanilla character-level RNN of min-char-rnn, batched and vectorised over time where it can be.

Shapes: V vocabulary size, H hidden size, T time steps (window), B batch (parallel streams).

    forward                                   backward (L = sum_t -log p_t[target_t], mean over B)
    a_t = Wxh[:, x_t] + Whh h_{t-1} + bh      dy_t     = p_t - onehot(target_t)            (B,V)
    h_t = tanh(a_t)                           dWhy     = sum_t dy_t^T h_t ; dby = sum_t dy_t
    y_t = Why h_t + by                        dh_t     = dy_t Why + dh_{t+1}^raw Whh      (B,H)
    p_t = softmax(y_t)                        dhraw_t  = (1 - h_t^2) * dh_t
                                              dWxh[:, x_t] += dhraw_t ; dWhh += dhraw_t^T h_{t-1}

Only the recurrence runs in a Python loop over t; the input gather, the output layer, the softmax and
every weight gradient are whole-window matrix products.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .limits import MAX_HIDDEN_SIZE, MAX_SAMPLE_LENGTH, MAX_VOCAB_SIZE, check_float, check_int
from .optim import param_views

PARAM_NAMES = ("Wxh", "Whh", "Why", "bh", "by")


class Workspace:
    """Preallocated scratch for windows of shape (B,T): the trainer makes one and reuses it every
    step, so the hot loops neither allocate arrays nor make views (both cost as much as the math
    at hidden size 100). Per-step views of the time-major buffers are built here, once."""

    def __init__(self, B: int, T: int, H: int, V: int, dtype):
        N = B * T
        self.hs = np.empty((T + 1, B, H), dtype=dtype)          # h_0 .. h_T
        self.hs_steps = list(self.hs)
        self.tmp = np.empty((B, H), dtype=dtype)
        self.hs_t = np.empty((H, N), dtype=dtype)               # h_1 .. h_T as columns
        self.logits_t = np.empty((V, N), dtype=dtype)           # logits -> p -> dy, in place, transposed
        self.columns = np.arange(N)                              # n = t * B + b
        self.index = np.empty(N, dtype=np.intp)
        self.ones = np.ones(N, dtype=dtype)
        self.dh_out = np.empty((N, H), dtype=dtype)             # dy Why: dL/dh_t from the output
        self.tanh_deriv = np.empty((T, B, H), dtype=dtype)
        self.dh = np.empty((T, B, H), dtype=dtype)
        self.dh_raw = np.empty((T, B, H), dtype=dtype)
        self.zeros = np.zeros((B, H), dtype=dtype)
        self.dh_next = np.empty((B, H), dtype=dtype)            # dh_raw_{t+1} Whh, read before rewritten
        rev = slice(None, None, -1)
        self.backward_steps = list(zip(self.dh_out.reshape(T, B, H)[rev], self.dh[rev], self.dh_raw[rev],
                                       self.tanh_deriv[rev]))
        self._one_hot = np.zeros((N, V), dtype=dtype)
        self._hot = None                                         # where the ones are now

    def one_hot(self, x: np.ndarray) -> np.ndarray:
        """(N,V) one-hot rows of x (B,T), time-major; only the previous ones are cleared."""
        if self._hot is not None:
            self._one_hot.ravel()[self._hot] = 0.0
        self._hot = self.columns * self._one_hot.shape[1] + x.T.reshape(-1)
        self._one_hot.ravel()[self._hot] = 1.0
        return self._one_hot


@dataclass
class ForwardTrace:
    """What the model computed on a window. Leading B axis present only for batched input."""

    hs: np.ndarray      # (T,H) or (B,T,H): h_1 .. h_T
    ps: np.ndarray      # (T,V) or (B,T,V): softmax outputs
    h_last: np.ndarray  # (H,) or (B,H)


class VanillaRNN:
    """Parameters of the RNN and the math on them (forward, loss + gradients, sampling).

    Weights are N(0,1)*0.01 drawn from ``np.random.default_rng(seed)`` in the order Wxh, Whh, Why;
    biases are zero.
    """

    def __init__(self, vocab_size: int, hidden_size: int, seed: int = 0, dtype=np.float64):
        check_int("vocab_size", vocab_size, 1, MAX_VOCAB_SIZE)
        check_int("hidden_size", hidden_size, 1, MAX_HIDDEN_SIZE)
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise ValueError(f"dtype must be float64 or float32, got {dtype}")
        self.vocab_size, self.hidden_size, self.dtype, self.seed = int(vocab_size), int(hidden_size), dtype, seed
        V, H = self.vocab_size, self.hidden_size
        rng = np.random.default_rng(seed)
        self._pack({
            "Wxh": rng.standard_normal((H, V)) * 0.01,
            "Whh": rng.standard_normal((H, H)) * 0.01,
            "Why": rng.standard_normal((V, H)) * 0.01,
            "bh": np.zeros(H),
            "by": np.zeros(V),
        })

    @property
    def shapes(self) -> dict[str, tuple]:
        V, H = self.vocab_size, self.hidden_size
        return {"Wxh": (H, V), "Whh": (H, H), "Why": (V, H), "bh": (H,), "by": (V,)}

    def _pack(self, arrays: dict) -> None:
        """Hold the parameters as views of one flat vector, so the optimizer, clipping and norms
        handle all five with one call each instead of five."""
        self._flat = np.empty(sum(int(np.prod(s)) for s in self.shapes.values()), dtype=self.dtype)
        self.params = param_views(self._flat, self.shapes)
        for k, a in arrays.items():
            self.params[k][...] = a

    def flat_params(self) -> np.ndarray:
        """The flat vector (N,) behind ``params``. If a caller replaced an entry of ``params`` with
        a new array (instead of writing into it), the parameters are packed again first."""
        if any(self.params[k].base is not self._flat for k in PARAM_NAMES):
            self._pack({k: np.asarray(self.params[k]) for k in PARAM_NAMES})
        return self._flat

    # Pickle copies every array on its own, so ``params`` would come back detached from ``_flat``:
    # send the flat vector only and make the views again.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_flat"] = self.flat_params()
        del state["params"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.params = param_views(self._flat, self.shapes)

    # ------------------------------------------------------------------ input checks
    def _check_ids(self, name: str, ids) -> np.ndarray:
        arr = np.asarray(ids)
        if arr.ndim not in (1, 2) or arr.size == 0:
            raise ValueError(f"{name} must be a non-empty int array of shape (T,) or (B,T), got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must hold integer token ids, got dtype {arr.dtype}")
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= self.vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} contains token id {bad}; allowed ids are 0..{self.vocab_size - 1}")
        return arr.astype(np.intp, copy=False)

    def _check_h0(self, h0, batch: int, batched: bool) -> np.ndarray:
        H = self.hidden_size
        if h0 is None:
            return np.zeros((batch, H), dtype=self.dtype)
        h0 = np.asarray(h0, dtype=self.dtype)
        want = (batch, H) if batched else (H,)
        if h0.shape != want:
            raise ValueError(f"h0 must have shape {want} to match the inputs, got {h0.shape}")
        if not np.isfinite(h0).all():
            raise ValueError("h0 must hold finite numbers")
        return h0.reshape(batch, H)

    def _prepare(self, inputs, targets=None, h0=None):
        x = self._check_ids("inputs", inputs)
        batched = x.ndim == 2
        if targets is not None:
            y = self._check_ids("targets", targets)
            if y.shape != x.shape:
                raise ValueError(f"targets shape {y.shape} must equal inputs shape {x.shape}")
            y = y.reshape(-1, y.shape[-1])
        else:
            y = None
        x2 = x.reshape(-1, x.shape[-1])
        return x2, y, self._check_h0(h0, x2.shape[0], batched), batched

    # ------------------------------------------------------------------ the math
    def workspace(self, batch: int, steps: int) -> "Workspace":
        """Scratch arrays for windows of shape (batch, steps), to reuse across training steps."""
        return Workspace(batch, steps, self.hidden_size, self.vocab_size, self.dtype)

    def _forward(self, x: np.ndarray, h0: np.ndarray, work: "Workspace | None" = None) -> np.ndarray:
        """x (B,T) ids, h0 (B,H) -> hs (T+1,B,H), time-major, hs[0] = h0 (work.hs when given)."""
        P = self.params
        B, T = x.shape
        if work is None:
            hs = np.empty((T + 1, B, self.hidden_size), dtype=self.dtype)
            steps, tmp = list(hs), np.empty((B, self.hidden_size), dtype=self.dtype)
        else:
            hs, steps, tmp = work.hs, work.hs_steps, work.tmp
        hs[0] = h0
        # Gathering columns of Wxh is the one-hot product Wxh @ x_t without the multiply.
        np.add(P["Wxh"].T[x.T], P["bh"], out=hs[1:])
        WhhT = P["Whh"].T
        # np.dot with out= is the cheapest NumPy call for these small products; the views in
        # ``steps`` are made once, since making them inside the loop costs as much as the math.
        dot, add, tanh = np.dot, np.add, np.tanh
        for h_prev, a in zip(steps, steps[1:]):
            dot(h_prev, WhhT, out=tmp)
            add(a, tmp, out=a)
            tanh(a, out=a)
        return hs

    def _softmax_t(self, hs_out: np.ndarray, work: "Workspace | None" = None) -> np.ndarray:
        """hs_out (N,H) -> probabilities transposed, (V,N): column n is softmax(Why h_n + by), its
        largest logit subtracted first (stable). Transposed because Why (V,H) @ hs_out^T (H,N) with
        both operands row-major is the fast case of BLAS at these sizes; hs_out @ Why^T takes ~1.6x
        as long. ``work``: write into its buffers instead of fresh arrays."""
        if work is None:
            hs_t, logits = np.ascontiguousarray(hs_out.T), None
        else:
            hs_t, logits = work.hs_t, work.logits_t
            hs_t[...] = hs_out.T
        logits = np.dot(self.params["Why"], hs_t, out=logits)
        logits += self.params["by"][:, None]
        logits -= logits.max(axis=0)
        np.exp(logits, out=logits)
        # Column sums as a product with ones: the same sums, without the overhead of an axis reduction.
        logits /= np.dot(np.ones(logits.shape[0], dtype=logits.dtype), logits)
        return logits

    def forward(self, inputs, h0=None) -> ForwardTrace:
        """Run the net over ``inputs`` (T,) or (B,T) from ``h0`` (zeros by default)."""
        x, _, h0_, batched = self._prepare(inputs, None, h0)
        hs = self._forward(x, h0_)
        B, T = x.shape
        ps = self._softmax_t(hs[1:].reshape(T * B, -1)).T.reshape(T, B, -1)
        hs_bt, ps_bt = hs[1:].transpose(1, 0, 2), ps.transpose(1, 0, 2)
        if batched:
            return ForwardTrace(np.ascontiguousarray(hs_bt), np.ascontiguousarray(ps_bt), hs[-1].copy())
        return ForwardTrace(hs_bt[0].copy(), ps_bt[0].copy(), hs[-1][0].copy())

    def _loss_and_grads(self, x, y, h0, out=None, keep_ps=True, work: "Workspace | None" = None):
        """Core of BPTT. x, y (B,T); h0 (B,H). Returns loss (mean over B), grads, hs (T+1,B,H),
        ps (T,B,V), dh (T,B,H) and dh_raw (T,B,H). ``out``: arrays shaped like the params to write
        the gradients into (the trainer's flat gradient buffer); fresh arrays when None. With
        ``keep_ps=False`` the probabilities are overwritten by dy (the trainer does not need them).
        ``work``: a Workspace for this (B,T) reused across calls (the trainer's): the arrays
        returned are then its buffers, valid until the next call with it. Fresh arrays when None.
        A probability of 0 gives an infinite loss; callers decide whether to silence the warning."""
        if out is None:
            out = {k: np.empty(s, dtype=self.dtype) for k, s in self.shapes.items()}
        B, T = x.shape
        if work is None:
            work = self.workspace(B, T)
        P = self.params
        H, V = self.hidden_size, self.vocab_size
        hs = self._forward(x, h0, work)
        N = T * B
        hs_out = hs[1:].reshape(N, H)
        ps_t = self._softmax_t(hs_out, work)            # (V,N), column n = (t, b) time-major
        # index of p_t[target_t] in ps_t.ravel(): target * N + column (ids may be uint8: compute in intp)
        target_flat = np.multiply(y.T.reshape(N), N, out=work.index, dtype=np.intp)
        target_flat += work.columns
        loss = float(-np.log(ps_t.ravel()[target_flat]).sum()) / B
        dy_t = ps_t.copy() if keep_ps else ps_t
        dy_t.ravel()[target_flat] -= 1.0
        if B > 1:
            dy_t /= B
        ones = work.ones                                # sums over steps as products: faster than .sum(axis=1)
        np.dot(dy_t, hs_out, out=out["Why"])
        np.dot(dy_t, ones, out=out["by"])
        np.dot(dy_t.T, P["Why"], out=work.dh_out)       # gradient reaching h_t from the output
        deriv = np.multiply(hs[1:], hs[1:], out=work.tanh_deriv)
        np.subtract(1.0, deriv, out=deriv)              # tanh' = 1 - h^2
        Whh, dh_next = P["Whh"], work.zeros
        dot, add, multiply = np.dot, np.add, np.multiply
        for d_out, d, d_raw, der in work.backward_steps:   # t = T-1 .. 0
            add(d_out, dh_next, out=d)
            multiply(der, d, out=d_raw)
            dh_next = dot(d_raw, Whh, out=work.dh_next)
        flat_raw = work.dh_raw.reshape(N, H)
        np.dot(flat_raw.T, hs[:-1].reshape(N, H), out=out["Whh"])
        np.dot(ones, flat_raw, out=out["bh"])
        # dWxh[:, v] sums dh_raw over the steps whose input is v: one-hot product as a matrix product.
        np.dot(flat_raw.T, work.one_hot(x), out=out["Wxh"])
        return loss, out, hs, ps_t.T.reshape(T, B, V), work.dh, work.dh_raw

    def loss_and_grads(self, inputs, targets, h0=None):
        """Loss (sum over time, mean over batch), exact unclipped gradients, last hidden state.

        inputs, targets: (T,) or (B,T) ids; h0: (H,) / (B,H) / None. h_last is shaped like h0.
        """
        x, y, h0_, batched = self._prepare(inputs, targets, h0)
        with np.errstate(divide="ignore"):
            loss, grads, hs, *_ = self._loss_and_grads(x, y, h0_, keep_ps=False)
        h_last = hs[-1].copy() if batched else hs[-1][0].copy()
        return loss, grads, h_last

    def backprop_trace(self, inputs, targets, h0=None) -> dict:
        """Every intermediate of BPTT on one unbatched window, for teaching views.

        Returns "hs" (T,H), "ps" (T,V), "dy" (T,V), "dh" (T,H) (dL/dh_t, including what flows back
        from later steps), "dh_raw" (T,H) (through tanh), "losses" (T,), "loss", "grads", "h_prev" (T,H).
        """
        x, y, h0_, batched = self._prepare(inputs, targets, h0)
        if batched:
            raise ValueError(f"backprop_trace takes one window of shape (T,), got shape {np.shape(inputs)}")
        with np.errstate(divide="ignore"):
            loss, grads, hs, ps, dh, dh_raw = self._loss_and_grads(x, y, h0_)
        T = x.shape[1]
        ps1 = ps[:, 0]
        dy = ps1.copy()
        dy[np.arange(T), y[0]] -= 1.0
        with np.errstate(divide="ignore"):
            losses = -np.log(ps1[np.arange(T), y[0]])
        return {"hs": hs[1:, 0].copy(), "h_prev": hs[:-1, 0].copy(), "ps": ps1, "dy": dy,
                "dh": dh[:, 0].copy(), "dh_raw": dh_raw[:, 0].copy(), "losses": losses,
                "loss": loss, "grads": grads}

    def evaluate(self, ids, *, streams: int = 64) -> float:
        """Mean cross-entropy in nats per predicted character over the text ``ids`` (N,).

        The text is cut into up to ``streams`` contiguous pieces read in parallel, each from h = 0,
        so a long validation text costs a few whole-batch matrix products per character.
        """
        ids = self._check_ids("ids", ids)
        if ids.ndim != 1 or ids.size < 2:
            raise ValueError(f"ids must be a 1-D text of at least 2 characters, got shape {ids.shape}")
        B = max(1, min(streams, (ids.size - 1) // 2))
        L = (ids.size - 1) // B
        x = ids[: B * L].reshape(B, L)
        y = ids[1: B * L + 1].reshape(B, L)
        hs = self._forward(x, np.zeros((B, self.hidden_size), dtype=self.dtype))
        total = 0.0
        chunk = max(1, 4096 // B)   # bound the (N,V) logits buffer
        for s in range(0, L, chunk):
            h = hs[1 + s: 1 + s + chunk].reshape(-1, self.hidden_size)
            # log-softmax, so a probability that underflows to 0 still gives a finite loss
            logits = h @ self.params["Why"].T + self.params["by"]
            logits -= logits.max(axis=1, keepdims=True)
            log_norm = np.log(np.exp(logits).sum(axis=1))
            tgt = y[:, s: s + chunk].T.reshape(-1)
            total += float((log_norm - logits[np.arange(tgt.size), tgt]).sum())
        return total / (B * L)

    # ------------------------------------------------------------------ sampling
    def step_hidden(self, h: np.ndarray, token: int) -> np.ndarray:
        """One step of the recurrence for one token: h (H,) -> h' (H,)."""
        P = self.params
        return np.tanh(P["Wxh"][:, token] + P["Whh"] @ h + P["bh"])

    def next_probs(self, h: np.ndarray, temperature: float = 1.0) -> np.ndarray:
        """Distribution (V,) of the next character from hidden state h (H,), logits / temperature."""
        logits = (self.params["Why"] @ h + self.params["by"]) / temperature
        logits = logits - logits.max()
        e = np.exp(logits)
        return e / e.sum()

    def sample(self, n: int, prime=None, h0=None, temperature: float = 1.0, greedy: bool = False, rng=None):
        """Generate ``n`` ids. The hidden state starts at h0 (zeros), reads ``prime`` (ids) if given,
        then each next character is drawn from softmax(y / temperature) (argmax when ``greedy``).
        With no prime the first character comes from the output at h0 alone.
        rng: a np.random.Generator, an int seed, or None (fresh entropy)."""
        check_int("n", n, 0, MAX_SAMPLE_LENGTH)
        check_float("temperature", temperature, 0.0, 100.0, lo_inclusive=False)
        h = self._check_h0(h0, 1, False)[0].copy()
        if prime is not None and len(prime):
            for tok in self._check_ids("prime", prime).ravel():
                h = self.step_hidden(h, int(tok))
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        out = np.empty(int(n), dtype=np.int64)
        uniforms = rng.random(int(n))
        for i in range(int(n)):
            p = self.next_probs(h, temperature)
            if greedy:
                tok = int(np.argmax(p))
            else:
                cdf = np.cumsum(p)
                tok = min(int(np.searchsorted(cdf, uniforms[i] * cdf[-1], side="right")), self.vocab_size - 1)
            out[i] = tok
            h = self.step_hidden(h, tok)
        return out

    # ------------------------------------------------------------------ utilities
    def copy(self) -> "VanillaRNN":
        other = VanillaRNN.__new__(VanillaRNN)
        other.vocab_size, other.hidden_size, other.dtype, other.seed = (
            self.vocab_size, self.hidden_size, self.dtype, self.seed)
        other._pack({k: self.params[k] for k in PARAM_NAMES})
        return other

    def spectral_radius(self) -> float:
        """Largest |eigenvalue| of Whh: above 1, the linearised recurrence can blow up signals."""
        return float(np.max(np.abs(np.linalg.eigvals(self.params["Whh"].astype(np.float64)))))
