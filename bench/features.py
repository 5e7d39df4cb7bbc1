"""pellucid.features: maximize and attention + rollout against the bare passes of the same work.

* **maximize** on the digits CNN (``pellucid.zoo.digits_cnn``): ``features.maximize(model,
  class_logit(3), shape=(1, 8, 8), steps=256, seed=0)`` with its defaults (decorrelated Fourier
  parameterization, standard jitter/scale/rotate transforms). *bare*: the least work of 256
  gradient-ascent steps — Adam on a raw ``(1, 1, 8, 8)`` pixel tensor, each step one forward and
  one backward of the model to the pixels (parameters frozen). *bare+param*: the same plus the
  Fourier parameterization and the transforms done inline (what Lucent does per step), so the
  ratio to it shows pellucid's own overhead apart from the extra work the method asks for.
  pellucid runs this small problem on one intra-op thread, so the bare passes are timed with
  the benchmark's threads (``bare``) and with one (``bare 1 thread``).
* **attention** on MiniLM-L6 (``pellucid.zoo.minilm_sentiment``): ``features.attention(model,
  ids)`` then ``features.attention_rollout(att)`` for 32 planted sentences (padded to the
  longest). *bare*: one forward of the same 32 rows with eager attention already set and
  ``output_attentions=True``, the attentions stacked. *sdpa*: the plain forward without
  attentions (for reference: the price of asking for attention weights at all).

Medians over interleaved repetitions (see ``_timing.py``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from _timing import measure, summarize

from pellucid._state import explaining

NAME = "features"
STEPS = 256
SENTENCES = 32


def maximize_case() -> dict[str, Callable[[], Any]]:
    from pellucid import features as F
    from pellucid.features._param import image_param, make_transform
    from pellucid.zoo import digits_cnn

    model, _ = digits_cnn()
    model.eval()

    def bare() -> torch.Tensor:
        with explaining(model):
            x = torch.zeros(1, 1, 8, 8, requires_grad=True)
            opt = torch.optim.Adam([x], lr=0.05)
            for _ in range(STEPS):
                loss = -model(x)[:, 3].sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
        return x

    def bare_param() -> torch.Tensor:
        with explaining(model):
            gen = torch.Generator().manual_seed(0)
            theta, image = image_param("fft", (1, 1, 8, 8), generator=gen, device=torch.device("cpu"),
                                       dtype=torch.float32)
            transform = make_transform("standard", (8, 8), gen)
            opt = torch.optim.Adam([theta], lr=0.05)
            for _ in range(STEPS):
                loss = -model(transform(image()))[:, 3].sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
        return image()

    def ours() -> Any:
        return F.maximize(model, F.class_logit(3), shape=(1, 8, 8), steps=STEPS, seed=0,
                          progress=False)

    def one_thread(call: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return call()
            finally:
                torch.set_num_threads(threads)
        return run

    # pellucid runs this small problem on one thread (maximize.py): time the bare passes both ways
    return {"bare": bare, "bare 1 thread": one_thread(bare),
            "bare+param 1 thread": one_thread(bare_param), "pellucid": ours}


def attention_case() -> dict[str, Callable[[], Any]]:
    from pellucid import features as F
    from pellucid.zoo import minilm_sentiment, planted_texts

    model, _ = minilm_sentiment()
    texts, _, _ = planted_texts(SENTENCES, length=12, seed=7)
    ids = model.encode(texts)
    mask = (ids != model.pad_id).long()
    enc = model.encoder

    def bare() -> torch.Tensor:
        old = enc.config._attn_implementation
        enc.set_attn_implementation("eager")
        try:
            with torch.no_grad():
                out = enc(input_ids=ids, attention_mask=mask, output_attentions=True)
            return torch.stack(out.attentions, 1)
        finally:
            enc.set_attn_implementation(old)

    def sdpa() -> torch.Tensor:
        with torch.no_grad():
            return model(ids)

    def ours() -> torch.Tensor:
        att = F.attention(model, ids, progress=False)
        return F.attention_rollout(att)

    return {"bare": bare, "sdpa": sdpa, "pellucid": ours}


def run(*, reps: int = 11, warmup: int = 2, patience: float = 300.0) -> dict[str, Any]:
    cases = []
    calls = maximize_case()
    cases.append({"case": f"maximize, digits CNN, {STEPS} steps",
                  **summarize(measure(calls, reps=reps, warmup=warmup, patience=patience),
                              [("pellucid", "bare"), ("pellucid", "bare 1 thread"),
                               ("pellucid", "bare+param 1 thread"),
                               ("bare+param 1 thread", "bare 1 thread")])})
    calls = attention_case()
    cases.append({"case": f"attention + rollout, MiniLM-L6, {SENTENCES} sentences",
                  **summarize(measure(calls, reps=reps, warmup=warmup, patience=patience),
                              [("pellucid", "bare"), ("bare", "sdpa")])})
    return {"benchmark": NAME, "reps": reps, "warmup": warmup, "cases": cases}


def markdown(result: dict[str, Any]) -> str:
    lines = ["| case | times (median) | ratios (median of per-rep ratios) | discarded reps |",
             "| --- | --- | --- | --- |"]
    for c in result["cases"]:
        times = ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in c["seconds"].items())
        ratios = ", ".join(f"{k} **{v:.2f}**" for k, v in c["ratios"].items())
        lines.append(f"| {c['case']} | {times} | {ratios} | {c['discarded_reps']} |")
    return "\n".join(lines)
