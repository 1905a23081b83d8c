"""The `vllm` engine: offline vLLM on GPUs, for generation at scale (optional extra ``[vllm]``).

Prefix caching is on, so the constitution's worked examples, which open every critique and
every feedback question, are computed once per GPU and reused, the same idea as the
transformers engine's shared prefix. `choice_logprobs` scores ``prompt + choice`` with
``prompt_logprobs`` and sums the log-probs of the choice's own tokens; with the prompt's
KV already cached, each extra choice costs a few tokens. vLLM is imported only here.
"""

from constitutional.engines.base import SamplingParams
from constitutional.errors import UserError
from constitutional.messages import Conversation


class VLLMEngine:
    def __init__(self, path: str, tensor_parallel_size: int = 1, memory: float = 0.85, seed: int = 0):
        try:
            import vllm
        except ImportError:
            raise UserError("the vllm engine needs vLLM: pip install 'constitutional-ai[vllm]'") from None
        import torch

        if not torch.cuda.is_available():
            raise UserError("the vllm engine needs a CUDA GPU; on a CPU use the model without the vllm: prefix")
        if tensor_parallel_size > torch.cuda.device_count():
            raise UserError(f"tp={tensor_parallel_size} but only {torch.cuda.device_count()} GPUs are visible")
        self._vllm = vllm
        self.llm = vllm.LLM(
            model=path,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=memory,
            enable_prefix_caching=True,
            seed=seed,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.tokens_generated = 0

    def chat(self, conversations: list[Conversation], params: SamplingParams) -> list[str]:
        sampling = self._vllm.SamplingParams(
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_new_tokens,
            seed=params.seed,
            stop=params.stop or None,
        )
        outputs = self.llm.chat(conversations, sampling, use_tqdm=False)
        self.tokens_generated += sum(len(o.outputs[0].token_ids) for o in outputs)
        return [o.outputs[0].text for o in outputs]

    def choice_logprobs(self, prompts: list[str], choices: list[str]) -> list[list[float]]:
        from vllm.inputs import TokensPrompt

        requests, spans = [], []
        for prompt in prompts:
            head = self.tokenizer(prompt, add_special_tokens=False).input_ids
            for choice in choices:
                full = self.tokenizer(prompt + choice, add_special_tokens=False).input_ids
                # The choice's tokens start where the two tokenisations part.
                start = next((k for k, (a, b) in enumerate(zip(head, full)) if a != b), min(len(head), len(full)))
                requests.append(TokensPrompt(prompt_token_ids=full))
                spans.append((full, start))
        sampling = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outputs = self.llm.generate(requests, sampling, use_tqdm=False)
        scores = []
        for out, (full, start) in zip(outputs, spans):
            # prompt_logprobs[k] holds the log-prob of token k given the tokens before it.
            scores.append(sum(out.prompt_logprobs[k][full[k]].logprob for k in range(max(start, 1), len(full))))
        k = len(choices)
        return [scores[i * k : (i + 1) * k] for i in range(len(prompts))]
