"""Runs in the vLLM venv: the score job on the real engine, with wrong log-probs injected into the
answers for chosen base rows after the base-row reference was taken; then the same job untouched.

argv: args.json answer.json. args: spec (without output_dir), out, corrupt [pair ids], delta.
Answer: exit_code and error text of the injected run; clean_exit_code and clean_metadata.
"""

import contextlib
import functools
import io as stdio
import json
import sys
from types import SimpleNamespace


def main() -> None:
    args = json.loads(open(sys.argv[1]).read())
    from gpu_jobs import runner, score
    from gpu_jobs.inputs import read_items
    from gpu_jobs.modeling import load_tokenizer
    from gpu_jobs.spec import parse_spec
    from gpu_jobs.vllm_engine import VllmEngine, import_vllm

    real = import_vllm()
    state = {"armed": False}
    spec0 = parse_spec("score", {**args["spec"], "output_dir": args["out"] + "-probe"})
    tok = load_tokenizer(spec0.model)
    items = read_items(spec0.pairs, spec_field="pairs", adapters=spec0.adapters, with_completion=True)
    corrupt = {
        tuple(e[0]) for it, e in zip(items, score.encode_items(spec0, tok, items)) if str(it.id) in set(args["corrupt"])
    }

    class LLM(real.LLM):  # the real engine; its answers for the chosen base rows are altered
        def generate(self, prompts, sampling_params=None, lora_request=None, use_tqdm=True):
            outs = super().generate(
                prompts, sampling_params=sampling_params, lora_request=lora_request, use_tqdm=use_tqdm
            )
            loras = lora_request if isinstance(lora_request, list) else [lora_request] * len(prompts)
            for p, lr, out in zip(prompts, loras, outs):
                ids = tuple(p["prompt_token_ids"])
                if state["armed"] and lr is None and ids in corrupt:
                    out.prompt_logprobs = [None] + [
                        {t: SimpleNamespace(logprob=lp.logprob + args["delta"]) for t, lp in pos.items()}
                        for pos in list(out.prompt_logprobs)[1:]
                    ]
            return outs

    original = VllmEngine.set_base_reference

    def set_base_reference(self, prompts):
        n = original(self, prompts)
        state["armed"] = True
        return n

    VllmEngine.set_base_reference = set_base_reference
    ns = SimpleNamespace(LLM=LLM, SamplingParams=real.SamplingParams, LoRARequest=real.LoRARequest)
    answer = {}
    for label, out in (("", args["out"]), ("clean_", args["out"] + "-clean")):
        state["armed"] = False
        if label == "clean_":
            VllmEngine.set_base_reference = original
        spec_path = out + ".json"
        open(spec_path, "w").write(json.dumps({**args["spec"], "output_dir": out}))
        err = stdio.StringIO()
        with contextlib.redirect_stderr(err):
            code = runner.main("score", functools.partial(score.run, vllm=ns), ["--spec", spec_path])
        answer[f"{label}exit_code"] = code
        answer[f"{label}error"] = err.getvalue()[-6000:]
        marker = runner.io.read_marker(out)
        answer[f"{label}metadata"] = marker.metadata if marker else None
    open(sys.argv[2], "w").write(json.dumps(answer))


if __name__ == "__main__":
    main()
