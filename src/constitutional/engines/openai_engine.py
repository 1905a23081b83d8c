"""The `openai` engine: any OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, Ollama, APIs).

Requests go out concurrently, at most ``concurrency`` at a time, through the official
`openai` client, which retries timeouts, connection errors, 408/409/429 and 5xx with
exponential backoff and jitter and honours ``Retry-After``. A request that still fails
comes back as a `Failure` with its reason instead of raising, so a stage can record it and
go on; a rerun retries only those.

`choice_logprobs` needs completion log-probs. It asks the completions endpoint for the top
log-probs of the next token (one request per prompt) and, for a choice that is not among
them or spans several tokens, scores ``prompt + choice`` with ``echo`` (vLLM and llama.cpp
offer both). A server that offers neither gets an error that says so.

The API key is read from an environment variable (``OPENAI_API_KEY`` unless named
otherwise) and never stored on the engine's public fields, in logs or in manifests.
"""

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

from constitutional.engines.base import Failure, NoLogprobs, SamplingParams
from constitutional.messages import Conversation
from constitutional.secrets import redact

T = TypeVar("T")
TOP_LOGPROBS = 20


class OpenAIEngine:
    def __init__(
        self,
        model: str,
        base_url: str,
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 6,
        api_key_env: str = "OPENAI_API_KEY",
    ):
        import openai

        self.model, self.base_url, self.concurrency = model, base_url, concurrency
        self.tokens_generated = 0
        self.failures = 0
        self._openai = openai
        self._api_key_env, self._timeout, self._max_retries = api_key_env, timeout, max_retries

    def __repr__(self) -> str:
        return f"OpenAIEngine(model={self.model!r}, base_url={self.base_url!r})"

    def _gather(self, jobs: list[Callable[[], Awaitable[T]]]) -> list[T | Failure]:
        async def run_all() -> list[T | Failure]:
            # One client per event loop: its connection pool belongs to the loop that made it.
            # Servers on loopback need no key; the client insists on one, so a placeholder is used.
            key = os.environ.get(self._api_key_env) or "no-key"
            self._client = self._openai.AsyncOpenAI(
                base_url=self.base_url, api_key=key, timeout=self._timeout, max_retries=self._max_retries
            )
            gate = asyncio.Semaphore(self.concurrency)

            async def one(job: Callable[[], Awaitable[T]]) -> T | Failure:
                async with gate:
                    try:
                        return await job()
                    except self._openai.APIStatusError as e:
                        return Failure(f"HTTP {e.status_code} from {self.base_url}: {_first_line(e.message)}")
                    except self._openai.APIConnectionError as e:
                        return Failure(f"no answer from {self.base_url}: {_first_line(str(e.__cause__ or e))}")
                    except self._openai.APIError as e:
                        return Failure(f"bad answer from {self.base_url}: {_first_line(str(e))}")

            try:
                return await asyncio.gather(*(one(j) for j in jobs))
            finally:
                await self._client.close()

        results = asyncio.run(run_all())
        self.failures += sum(isinstance(r, Failure) for r in results)
        return results

    def chat(self, conversations: list[Conversation], params: SamplingParams) -> list[str | Failure]:
        def job(conv: Conversation) -> Callable[[], Awaitable[str]]:
            async def call() -> str:
                r = await self._client.chat.completions.create(
                    model=self.model,
                    messages=conv,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    max_tokens=params.max_new_tokens,
                    seed=params.seed,
                    stop=params.stop or None,
                )
                if r.usage is not None:
                    self.tokens_generated += r.usage.completion_tokens or 0
                return r.choices[0].message.content or ""

            return call

        return self._gather([job(c) for c in conversations])

    def choice_logprobs(self, prompts: list[str], choices: list[str]) -> list[list[float] | Failure]:
        def job(prompt: str) -> Callable[[], Awaitable[list[float]]]:
            async def call() -> list[float]:
                top = await self._top_logprobs(prompt)
                out = []
                for choice in choices:
                    if choice in top:
                        out.append(top[choice])
                    else:
                        out.append(await self._echo_logprob(prompt, choice))
                return out

            return call

        return self._gather([job(p) for p in prompts])

    async def _top_logprobs(self, prompt: str) -> dict[str, float]:
        r = await self._client.completions.create(
            model=self.model, prompt=prompt, max_tokens=1, temperature=0.0, logprobs=TOP_LOGPROBS
        )
        lp = r.choices[0].logprobs
        if lp is None or not lp.top_logprobs:
            raise NoLogprobs(
                f"{self.base_url}: the server returned no log-probabilities, which AI feedback needs; "
                "use --cot (which reads the answer from generated text) or a judge served by vLLM or llama.cpp"
            )
        return dict(lp.top_logprobs[0])

    async def _echo_logprob(self, prompt: str, choice: str) -> float:
        """log P(choice | prompt), from the server's log-probs of the echoed prompt."""
        r = await self._client.completions.create(
            model=self.model, prompt=prompt + choice, max_tokens=1, temperature=0.0, logprobs=1, echo=True
        )
        lp = r.choices[0].logprobs
        if lp is None or lp.text_offset is None or lp.token_logprobs is None:
            raise NoLogprobs(
                f"{self.base_url}: the server does not echo prompt log-probabilities, and {choice!r} is not among "
                f"the top {TOP_LOGPROBS} next tokens; use --cot or another judge"
            )
        total = 0.0
        for offset, logprob in zip(lp.text_offset, lp.token_logprobs):
            if len(prompt) <= offset < len(prompt) + len(choice) and logprob is not None:
                total += logprob
        return total


def _first_line(text: str) -> str:
    text = redact(text or "").strip()
    return text.splitlines()[0][:300] if text else "(no detail)"
