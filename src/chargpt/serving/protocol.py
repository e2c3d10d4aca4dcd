"""The completions request: parsing, validation and OpenAI-style errors.

Every problem becomes an APIError whose JSON body is OpenAI's:
{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from chargpt.checks import check_seed
from chargpt.data.tokenizer import CharTokenizer
from chargpt.errors import ChargptError, SettingError
from chargpt.inference import start_prompt
from chargpt.model.sampling import EMPTY_PROMPT, check_sampling

# What a JSON value is called in JSON's own words (json.loads gives these types; None is null).
_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true or false"}


class APIError(Exception):
    def __init__(
        self, status: int, message: str, param: str | None = None,
        type: str = "invalid_request_error", code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.type, self.code = status, message, param, type, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def model_not_found(asked: str, served: str) -> APIError:
    """A request (or a /v1/models/ID lookup) for a model this server does not serve."""
    return APIError(404, f"the model {asked!r} is not served here; this server serves {served!r}", "model",
                    code="model_not_found")


@dataclass(frozen=True)
class Limits:
    """What the server allows; set from chargpt-serve's config."""

    default_max_tokens: int = 256
    max_tokens: int = 4096  # the cap on max_tokens
    max_n: int = 8  # OpenAI's n: the choices of each prompt
    # The choices of a whole request, n times its prompts: the work it asks for. Room for the lists
    # clients send at once (LangChain's OpenAI class: 20 prompts).
    max_choices: int = 32

    def __post_init__(self) -> None:
        if self.max_n > self.max_choices:  # a lone prompt's n could then pass one check and fail the other
            raise ValueError(f"max_n={self.max_n} is above max_choices={self.max_choices}")


# OpenAI parameters this server does not implement, with the values that ask for nothing (OpenAI's
# defaults, and the empty list or map): sending another is an error (silently ignoring `echo` or
# `logit_bias` would return something else than the client asked for).
UNSUPPORTED: dict[str, tuple[Any, ...]] = {
    "echo": (None, False), "logprobs": (None,), "best_of": (None, 1),
    "suffix": (None, ""), "logit_bias": (None, {}), "presence_penalty": (None, 0),
    "frequency_penalty": (None, 0),
}


class CompletionBody(BaseModel):
    """The fields' types; their ranges are checked in parse_completion, with chargpt's messages.
    Strict: `true` is not the number 1 and "5" not 5; NaN and infinities are not numbers here."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    model: str | None = None
    prompt: Any = ""  # a string or a list of them, read by _prompts; left out: the model's start prompt
    max_tokens: int | None = None
    max_new_tokens: int | None = None  # chargpt-sample's name for max_tokens
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None  # an extension: OpenAI has none
    seed: int | None = None
    n: int | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    user: str | None = None
    stop: Any = None  # read by _stop_sequences
    echo: Any = None
    logprobs: Any = None
    best_of: Any = None
    suffix: Any = None
    logit_bias: Any = None
    presence_penalty: Any = None
    frequency_penalty: Any = None


@dataclass(frozen=True)
class CompletionRequest:
    prompts: list[str]  # one, or OpenAI's batch: each gets n choices
    prompt_ids: list[list[int]]
    max_tokens: int
    temperature: float
    top_k: int | None
    top_p: float | None
    seed: int | None
    n: int
    stream: bool
    include_usage: bool
    stop: tuple[str, ...] = ()


def _named_in_text(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose every name is text: a lone surrogate escape ("\\ud800") is valid JSON but
    has no UTF-8, so an error naming that parameter could not be sent (a 500) and the request model
    reads it as no name at all."""
    for key, _ in pairs:
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise APIError(400, f"the parameter name {key!r} is not valid text (a lone surrogate escape); "
                           "remove it or spell it in UTF-8") from None
    return dict(pairs)


def read_json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw, object_pairs_hook=_named_in_text)
    except UnicodeDecodeError:
        raise APIError(400, "the request body is not UTF-8 text; send JSON encoded as UTF-8") from None
    except json.JSONDecodeError as err:
        raise APIError(
            400, f"the request body is not valid JSON ({err.msg}: line {err.lineno} column {err.colno}); "
            "send a JSON object such as {\"prompt\": \"ROMEO:\", \"max_tokens\": 100}",
            code="invalid_json",
        ) from None
    except (RecursionError, ValueError) as err:  # nested too deep; an integer of over 4,300 digits
        what = "is nested too deeply" if isinstance(err, RecursionError) else "has a number too long to read"
        raise APIError(400, f"the request body {what}; send a JSON object such as "
                       "{\"prompt\": \"ROMEO:\", \"max_tokens\": 100}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, f"the request body must be a JSON object, got {_json_type(data)}")
    return data


def _type_error(err: ValidationError) -> APIError:
    first = err.errors()[0]
    param = ".".join(str(p) for p in first["loc"]) or None
    if first["type"] == "extra_forbidden":
        return APIError(400, f"unknown parameter {param!r}; remove it (the docs list the parameters)",
                        param, code="unknown_parameter")
    return APIError(400, f"{param}: {first['msg'].lower()} (got {first.get('input')!r})", param)


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "an object" if isinstance(value, dict) else "null")


def _is_token_ids(value: list[Any]) -> bool:
    """OpenAI's other prompt forms: a list of token ids, or a list of such lists."""
    first = value[0]
    return isinstance(first, list) or (isinstance(first, int) and not isinstance(first, bool))


def _prompts(value: Any, tokenizer: CharTokenizer) -> tuple[list[str], list[list[int]]]:
    """The prompts (a string, or OpenAI's list of strings) as the vocabulary writes them, and their ids."""
    if value is None:
        raise APIError(400, "prompt is null; give it as a string, or leave it out to start from a "
                       "newline (the model's first character, if its text has none)", "prompt")
    if isinstance(value, list) and not value:
        raise APIError(400, "prompt is an empty list; give at least one prompt (a string, or a list of "
                       "strings)", "prompt")
    if isinstance(value, list) and _is_token_ids(value):
        raise APIError(400, "prompt is given as token ids; this server's tokens are characters and it "
                       "reads text: send the prompt as a string, or several as a list of strings", "prompt")
    if not isinstance(value, (str, list)):
        raise APIError(400, f"prompt must be a string or a list of strings, got {_json_type(value)}",
                       "prompt")
    listed = isinstance(value, list)
    texts, ids = [], []
    for i, prompt in enumerate(value if listed else [value]):
        named = f"prompt[{i}]" if listed else "the prompt"
        if not isinstance(prompt, str):
            raise APIError(400, f"{named} must be a string, got {_json_type(prompt)}", "prompt")
        if not prompt:
            raise APIError(400, EMPTY_PROMPT.replace("the prompt", named, 1), "prompt")
        # As chargpt-sample reads it (Windows line endings, NFD); what is still unknown is named as
        # written so: 'é', not the combining accent of 'e' + U+0301.
        prompt, _ = tokenizer.as_written_here(prompt)
        try:
            ids.append(tokenizer.encode(prompt))
        except ChargptError as err:
            raise APIError(400, f"{named} has {err}", "prompt", code="unknown_characters") from None
        texts.append(prompt)
    return texts, ids


MAX_STOP = 4  # OpenAI's limit


def _stop_sequences(value: Any, tokenizer: CharTokenizer) -> tuple[str, ...]:
    """OpenAI's stop: null, a string or a list of up to 4 (null, "" and [] ask for none). A sequence
    with a character the vocabulary lacks never occurs: it is accepted, as harmless."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise APIError(400, f"stop must be a string or a list of up to {MAX_STOP} strings, got "
                       f"{_json_type(value)}", "stop")
    if len(value) > MAX_STOP:
        raise APIError(400, f"stop has {len(value)} sequences, more than the {MAX_STOP} allowed (as in "
                       f"OpenAI's API); send at most {MAX_STOP}", "stop")
    sequences = []
    for i, sequence in enumerate(value):
        if not isinstance(sequence, str):
            raise APIError(400, f"stop[{i}] must be a string, got {_json_type(sequence)}", "stop")
        if not sequence:
            raise APIError(400, f"stop[{i}] is an empty string, which would end every choice before its "
                           "first character; remove it", "stop")
        # Read as the prompt is: '\r\n' is the '\n' the model writes, where it has no '\r'.
        sequences.append(tokenizer.as_written_here(sequence)[0])
    return tuple(sequences)


def parse_completion(
    data: dict[str, Any], tokenizer: CharTokenizer, limits: Limits, model_name: str
) -> CompletionRequest:
    body = _validated(data)
    if body.model is not None and body.model != model_name:
        raise model_not_found(body.model, model_name)
    max_tokens, param = _max_tokens(body, limits)
    temperature = 1.0 if body.temperature is None else body.temperature
    n = 1 if body.n is None else body.n
    if not 1 <= n <= limits.max_n:
        raise APIError(400, f"n={n} must be between 1 and {limits.max_n}", "n")
    _check_sampling(body, temperature, max_tokens, param)
    # Left out, as chargpt-sample does: a newline, or the vocabulary's first character for a text
    # that has none.
    prompt = body.prompt if "prompt" in body.model_fields_set else start_prompt(tokenizer)
    prompts, prompt_ids = _prompts(prompt, tokenizer)
    if len(prompts) * n > limits.max_choices:  # only a list can: n alone is at most max_n
        raise APIError(400, f"{len(prompts)} prompts with n={n} ask for {len(prompts) * n} choices; this "
                       f"server's limit of {limits.max_choices} (max_choices) counts the choices of every "
                       "prompt: send fewer prompts or a smaller n", "prompt")
    stop = _stop_sequences(body.stop, tokenizer)
    include_usage = _include_usage(body)
    return CompletionRequest(
        prompts=prompts, prompt_ids=prompt_ids, max_tokens=max_tokens, temperature=temperature,
        top_k=body.top_k, top_p=body.top_p, seed=body.seed, n=n, stream=bool(body.stream),
        include_usage=include_usage, stop=stop,
    )


def _validated(data: dict[str, Any]) -> CompletionBody:
    """The body's fields typed, and none of those this server does not support set to more than neutral."""
    try:
        body = CompletionBody.model_validate(data)
    except ValidationError as err:
        raise _type_error(err) from None
    for name, neutral in UNSUPPORTED.items():
        value = getattr(body, name)
        if not any(value == v and isinstance(value, bool) == isinstance(v, bool) for v in neutral):
            raise APIError(400, f"{name} is not supported by this server; remove it from the request", name,
                           code="unsupported_parameter")
    return body


def _max_tokens(body: CompletionBody, limits: Limits) -> tuple[int, str]:
    """How many characters to write, within the server's limit, and the parameter that asked for them."""
    both = body.max_tokens is not None and body.max_new_tokens is not None
    if both and body.max_tokens != body.max_new_tokens:
        raise APIError(400, "max_tokens and max_new_tokens disagree; send only max_tokens", "max_tokens")
    max_tokens = body.max_tokens if body.max_tokens is not None else body.max_new_tokens
    param = "max_tokens" if body.max_tokens is not None else "max_new_tokens"
    if max_tokens is None:
        max_tokens = limits.default_max_tokens
    if max_tokens > limits.max_tokens:
        raise APIError(400, f"{param}={max_tokens} is above this server's limit of {limits.max_tokens}; "
                       f"ask for at most {limits.max_tokens} characters", param)
    return max_tokens, param


def _check_sampling(body: CompletionBody, temperature: float, max_tokens: int, param: str) -> None:
    """The sampling settings and the seed, checked as chargpt-sample checks them, each refusal
    naming the request's parameter."""
    try:
        check_sampling(temperature, body.top_k, body.top_p, max_tokens)
    except SettingError as err:
        failed, message = err.setting, str(err)
        if failed == "max_new_tokens":
            failed, message = param, message.replace("max_new_tokens", param, 1)
        raise APIError(400, message, failed) from None
    try:
        check_seed("seed", body.seed, optional=True)
    except ChargptError as err:
        raise APIError(400, str(err), "seed") from None


def _include_usage(body: CompletionBody) -> bool:
    """stream_options.include_usage, the one stream option, given only with stream=true."""
    if body.stream_options is not None and not body.stream:  # as OpenAI's API answers it
        raise APIError(400, "stream_options applies only with stream=true; leave it out, or set stream "
                       "to true", "stream_options")
    options = body.stream_options or {}
    if unknown := sorted(set(options) - {"include_usage"}):
        raise APIError(400, f"unknown parameter 'stream_options.{unknown[0]}'; the stream options are "
                       "include_usage", f"stream_options.{unknown[0]}", code="unknown_parameter")
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        param = "stream_options.include_usage"
        raise APIError(400, f"{param} must be true or false", param)
    return include_usage
