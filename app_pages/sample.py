"""Sample: let the network write, optionally after a prime of your own, at a chosen temperature."""
import streamlit as st

from playground.escape import html_text, markdown_text
from playground.session import state
from playground.views import analysis, prediction_figures, textviews
from rnn_core.limits import MAX_SAMPLE_LENGTH

# Log-spaced from 0.1 to 3 (each step about x1.2-1.5), with 1.0 exactly on the scale.
TEMPERATURES = [0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0]
MAX_PRIME_CHARS = 2000
MAX_SAMPLES = 5

ss = st.session_state
run = state.get_run()
model, vocab = run.trainer.model, run.vocab

DEFAULTS = {"smp_prime": "", "smp_length": 300, "smp_temperature": 1.0, "smp_greedy": False,
            "smp_seed": 0, "smp_count": 1}
for key, value in DEFAULTS.items():
    ss.setdefault(key, value)


def _prime_problem(prime: str) -> str | None:
    if len(prime) > MAX_PRIME_CHARS:
        return f"The prime has {len(prime):,} characters; at most {MAX_PRIME_CHARS:,} are allowed."
    return analysis.unknown_chars_message(prime, vocab.chars, what="The prime")


@state.locked
def _generate() -> None:
    """Generate button: new samples replace the old ones (at most MAX_SAMPLES x MAX_SAMPLE_LENGTH chars)."""
    prime = ss.smp_prime or ""
    if _prime_problem(prime):
        return                      # the error is already shown under the prime
    prime_ids = vocab.encode(prime)
    greedy = bool(ss.smp_greedy)
    count = 1 if greedy else int(ss.smp_count)   # argmax is deterministic: more would be copies
    seeds = [int(ss.smp_seed) + i for i in range(count)]
    texts = [vocab.decode(model.sample(int(ss.smp_length), prime=prime_ids, temperature=float(ss.smp_temperature),
                                       greedy=greedy, rng=seed)) for seed in seeds]
    ss.smp_results = {"prime": prime, "texts": texts, "seeds": seeds, "greedy": greedy,
                      "temperature": float(ss.smp_temperature), "iteration": run.iteration, "run": run.uid}


def _prime_html(prime: str) -> str:
    """The prime as a tinted block right above its continuation, so it is clear who wrote what."""
    # Line breaks as ⏎ plus a real break; invisible and text-reordering characters by name.
    shown = "".join("&#9166;<br>" if c == "\n" else html_text(textviews.reveal_invisible(c)) for c in prime)
    return ('<div style="font-family:' + textviews.MONOSPACE + ';font-size:0.85rem;white-space:pre-wrap;'
            'background:#fff4d6;border-left:3px solid #e0a100;padding:4px 8px;margin-bottom:-6px;'
            f'border-radius:4px 4px 0 0;"><span style="color:#8a6d00;font-family:sans-serif;font-size:0.75rem;">'
            f'PRIME (yours)</span><br>{shown}</div>')


def _code_body(text: str) -> str:
    """st.code drops one leading and one trailing newline; pad them back so the sample shows exactly."""
    return ("\n" if text.startswith("\n") else "") + text + ("\n" if text.endswith("\n") else "")


def _download_text(results: dict) -> str:
    parts = []
    for i, (seed, text) in enumerate(zip(results["seeds"], results["texts"]), 1):
        how = "greedy" if results["greedy"] else f"temperature {results['temperature']:g}, seed {seed}"
        parts.append(f"=== sample {i} ({how}, iteration {results['iteration']}) ===\n{results['prime']}{text}\n")
    return "\n".join(parts)


st.title("Sample from the network")
st.caption("The network writes one character at a time: it reads the prime (if any) from h = 0, then draws "
           "each next character from its predicted distribution and feeds it back in.")

settings, output = st.columns([1, 2], gap="large")
with settings:
    st.text_area("Prime (optional)", key="smp_prime", height=100, max_chars=MAX_PRIME_CHARS,
                 persist_state="session", placeholder="e.g. ROMEO:",
                 help="Text the network reads before it starts writing. Empty: it starts from h = 0 and "
                      "picks the first character itself.")
    problem = _prime_problem(ss.smp_prime or "")
    if problem:
        st.error(markdown_text(problem), icon=":material/error:")
    st.number_input("Length (characters to generate)", 1, MAX_SAMPLE_LENGTH, step=100, key="smp_length",
                    persist_state="session")
    st.checkbox("Greedy", key="smp_greedy", persist_state="session",
                help="Always the most likely character (argmax) instead of sampling: deterministic, and usually "
                     "gets stuck in a loop.")
    st.select_slider("Temperature", TEMPERATURES, key="smp_temperature", persist_state="session",
                     format_func=lambda t: f"{t:g}", disabled=bool(ss.smp_greedy),
                     help="The logits are divided by T before the softmax. Low T (< 1) sharpens the distribution: "
                          "conservative, repetitive text. High T (> 1) flattens it: more random, more made-up "
                          "words. T = 1 samples the model's own distribution.")
    seed_col, count_col = st.columns(2)
    seed_col.number_input("Seed", 0, 2**32 - 1, step=1, key="smp_seed", persist_state="session",
                          help="Same seed, settings and model = the same sample. Sample i uses seed + i − 1.")
    count_col.number_input("Samples", 1, MAX_SAMPLES, step=1, key="smp_count", persist_state="session",
                           disabled=bool(ss.smp_greedy))
    st.button("Generate", key="smp_generate", type="primary", on_click=_generate, disabled=bool(problem),
              icon=":material/edit_note:", width="stretch")

with output:
    results = ss.get("smp_results")
    if not results:
        st.info("Set a prime and temperature, then press **Generate**.", icon=":material/edit_note:")
    else:
        how = ("greedy (argmax)" if results["greedy"] else f"temperature {results['temperature']:g}")
        earlier = "" if results["run"] == run.uid else " of an earlier run"
        head_col, download_col = st.columns([3, 1], vertical_alignment="center")
        head_col.markdown(f"**{textviews.count(len(results['texts']), 'sample')}** · {how} · model at iteration "
                          f"{results['iteration']:,}{earlier}")
        download_col.download_button("Download .txt", _download_text(results), file_name="rnn_samples.txt",
                                      mime="text/plain", key="smp_download", on_click="ignore",
                                      icon=":material/download:", width="stretch")
        for i, (seed, text) in enumerate(zip(results["seeds"], results["texts"]), 1):
            with st.container(border=True):
                st.caption(f"Sample {i}" + ("" if results["greedy"] else f" · seed {seed}") +
                           f" · {textviews.count(len(text), 'character')}")
                if results["prime"]:
                    st.html(_prime_html(results["prime"]))
                st.code(_code_body(textviews.reveal_invisible(text)), language=None, wrap_lines=True)

    if not problem:
        temperature = float(ss.smp_temperature)
        probs = analysis.next_char_probs(model, vocab.encode(ss.smp_prime or ""), temperature)
        with st.expander("What would the first character be?", expanded=not results):
            st.plotly_chart(prediction_figures.sample_probability_figure(probs, vocab.chars, temperature=temperature),
                            key="smp_next_chart", width="stretch")
            where = "after reading the prime" if ss.smp_prime else "from h = 0 (no prime)"
            st.caption(f"The distribution the first character is drawn from, {where}, at the chosen "
                       "temperature (30 most likely characters). Lower the temperature and the tall bars grow; "
                       "raise it and the bars even out." + (" Greedy picks the tallest bar." if ss.smp_greedy
                                                            else ""))
