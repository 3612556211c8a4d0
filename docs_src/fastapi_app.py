"""An assistant whose answers survive an OpenAI outage: Anthropic takes over, then a canned reply."""

import os
from typing import Annotated

import anthropic
import httpx2
import openai
from fastapi import Depends, FastAPI

from breakerpanel import Alternate, BreakerConfig, BreakerRegistry, Feature, Static
from breakerpanel.integrations import Route, Router
from breakerpanel.integrations.fastapi import install_error_handlers, require_feature
from breakerpanel.integrations.httpx2 import AsyncBreakerTransport
from breakerpanel.presets import llm_http

URL = os.environ.get("LLM_BASE_URL", "https://api.openai.com")  # one host in tests, two in production
registry = BreakerRegistry()
llm = BreakerConfig(classifier=llm_http(), minimum_calls=5, wait_in_open=30)
routes = []
for service, endpoint, path in [("openai", "chat", "/v1/chat/completions"), ("anthropic", "messages", "/v1/messages")]:
    registry.service(service, llm, attributes={"gen_ai.provider.name": service})
    routes.append(Route(registry.endpoint(f"{service}.{endpoint}", llm), path=path))
http = httpx2.AsyncClient(transport=AsyncBreakerTransport(Router(routes)))
gpt = openai.AsyncOpenAI(
    base_url=f"{URL}/v1", api_key=os.environ.get("OPENAI_API_KEY", "-"), http_client=http, max_retries=0
)
claude = anthropic.AsyncAnthropic(
    base_url=URL, api_key=os.environ.get("ANTHROPIC_API_KEY", "-"), http_client=http, max_retries=0
)


async def ask_openai(question: str) -> str:
    chat = await gpt.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
    return chat.choices[0].message.content or ""


async def ask_anthropic(question: str) -> str:
    reply = await claude.messages.create(
        model="claude-fake", max_tokens=500, messages=[{"role": "user", "content": question}]
    )
    return "".join(block.text for block in reply.content if block.type == "text")


answer = registry.feature(
    "answer",
    required=["openai.chat"],
    # The transport already puts every Anthropic call through `anthropic.messages` (and `anthropic`):
    # the step names it and adds no breaker of its own, which would count each call twice.
    fallback=[Alternate(ask_anthropic, name="anthropic.messages"), Static("Busy right now, sorry.")],
)
app = FastAPI()
install_error_handlers(app)


@app.get("/ask")
async def ask(q: str, feature: Annotated[Feature, Depends(require_feature(answer))]) -> dict[str, str]:
    return {"answer": await feature.acall(ask_openai, q)}
