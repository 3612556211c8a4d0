"""Block Kit validation for the fake Slack: the subset of blocks and elements the incident bot uses.

Limits from Slack's Block Kit reference (https://docs.slack.dev/reference/block-kit/blocks,
https://docs.slack.dev/reference/block-kit/block-elements/button-element,
https://docs.slack.dev/reference/block-kit/composition-objects/text-object):

* a message has at most 50 blocks; ``block_id`` is a string of at most 255 characters, unique in the message;
* ``section``: ``text`` (text object, at most 3000 characters) and/or ``fields`` (1 to 10 text objects, each at
  most 2000 characters), one of them required; optional ``accessory`` (a button or an image element);
* ``header``: ``text``, a ``plain_text`` object of at most 150 characters;
* ``context``: ``elements``, 1 to 10 text objects or image elements;
* ``actions``: ``elements``, 1 to 25 buttons, ``action_id`` unique within the block;
* ``divider``: nothing else;
* text object: ``type`` ``plain_text`` or ``mrkdwn``, ``text`` 1 to 3000 characters, ``emoji`` (plain_text
  only), ``verbatim`` (mrkdwn only);
* button: ``text`` ``plain_text`` of at most 75 characters, ``action_id`` at most 255, ``value`` at most 2000,
  ``url`` at most 3000, ``style`` ``primary`` or ``danger``, ``confirm`` dialog, ``accessibility_label`` at most 75;
* image element: ``image_url`` (at most 3000) or ``slack_file``, and ``alt_text`` (required);
* ``image`` block (https://docs.slack.dev/reference/block-kit/blocks/image-block): exactly one of ``image_url``
  (at most 3000) and ``slack_file`` (https://docs.slack.dev/reference/block-kit/composition-objects/slack-file-object:
  exactly one of ``id`` and ``url``), ``alt_text`` (1 to 2000, required), ``title`` (``plain_text``, at most 2000).

Unknown properties are rejected, as Slack does ("invalid additional property"). Other block and element types
(rich_text, selects, ...) are valid in Slack but rejected here: the fake flags what the bot is not expected to
send. Error strings mimic Slack's ``[json-pointer:/blocks/0/text/text]`` suffix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["MAX_BLOCKS", "validate_blocks"]

MAX_BLOCKS: Final = 50
MAX_BLOCK_ID: Final = 255
MAX_SECTION_TEXT: Final = 3000
MAX_SECTION_FIELDS: Final = 10
MAX_FIELD_TEXT: Final = 2000
MAX_HEADER_TEXT: Final = 150
MAX_CONTEXT_ELEMENTS: Final = 10
MAX_ACTIONS_ELEMENTS: Final = 25
MAX_TEXT_OBJECT: Final = 3000
MAX_BUTTON_TEXT: Final = 75
MAX_ACTION_ID: Final = 255
MAX_BUTTON_VALUE: Final = 2000
MAX_URL: Final = 3000
MAX_IMAGE_ALT_TEXT: Final = 2000
MAX_IMAGE_TITLE: Final = 2000
BUTTON_STYLES: Final = ("primary", "danger")

_BLOCK_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "section": frozenset({"type", "block_id", "text", "fields", "accessory", "expand"}),
    "header": frozenset({"type", "block_id", "text"}),
    "context": frozenset({"type", "block_id", "elements"}),
    "actions": frozenset({"type", "block_id", "elements"}),
    "divider": frozenset({"type", "block_id"}),
    "image": frozenset({"type", "block_id", "image_url", "slack_file", "alt_text", "title"}),
}
_TEXT_KEYS: Final = frozenset({"type", "text", "emoji", "verbatim"})
_BUTTON_KEYS: Final = frozenset(
    {"type", "text", "action_id", "value", "url", "style", "confirm", "accessibility_label"}
)
_IMAGE_KEYS: Final = frozenset({"type", "image_url", "alt_text", "slack_file"})
_CONFIRM_KEYS: Final = frozenset({"title", "text", "confirm", "deny", "style"})


class _Errors:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, message: str, pointer: str) -> None:
        self.messages.append(f"{message} [json-pointer:{pointer}]")


def _check_keys(obj: Mapping[str, Any], allowed: frozenset[str], pointer: str, errors: _Errors) -> None:
    for key in obj:
        if key not in allowed:
            errors.add(f"invalid additional property: {key}", pointer)


def _check_string(
    value: object, pointer: str, errors: _Errors, *, max_length: int, min_length: int = 0, required: bool = True
) -> None:
    if value is None:
        if required:
            errors.add("missing required field", pointer)
        return
    if not isinstance(value, str):
        errors.add("expected a string", pointer)
    elif len(value) < min_length:
        errors.add(f"must be more than {min_length - 1} characters", pointer)
    elif len(value) > max_length:
        errors.add(f"must be less than {max_length + 1} characters", pointer)


def _check_text_object(
    value: object, pointer: str, errors: _Errors, *, max_length: int = MAX_TEXT_OBJECT, plain_only: bool = False
) -> None:
    if not isinstance(value, dict):
        errors.add("expected a text object", pointer)
        return
    _check_keys(value, _TEXT_KEYS, pointer, errors)
    kind = value.get("type")
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if kind not in allowed:
        errors.add(f"must be one of {', '.join(allowed)}", f"{pointer}/type")
    _check_string(value.get("text"), f"{pointer}/text", errors, max_length=max_length, min_length=1)
    if "emoji" in value and (kind != "plain_text" or not isinstance(value["emoji"], bool)):
        errors.add("emoji is only allowed (as a boolean) on plain_text", f"{pointer}/emoji")
    if "verbatim" in value and (kind != "mrkdwn" or not isinstance(value["verbatim"], bool)):
        errors.add("verbatim is only allowed (as a boolean) on mrkdwn", f"{pointer}/verbatim")


def _check_image_source(image: Mapping[str, Any], pointer: str, errors: _Errors) -> None:
    """Exactly one of ``image_url`` and ``slack_file`` (itself exactly one of ``id`` and ``url``)."""
    if ("image_url" in image) == ("slack_file" in image):
        errors.add("must provide exactly one of image_url or slack_file", pointer)
        return
    if "image_url" in image:
        _check_string(image["image_url"], f"{pointer}/image_url", errors, max_length=MAX_URL, min_length=1)
        return
    source = image["slack_file"]
    if not isinstance(source, dict):
        errors.add("expected a slack file object", f"{pointer}/slack_file")
        return
    _check_keys(source, frozenset({"id", "url"}), f"{pointer}/slack_file", errors)
    if ("id" in source) == ("url" in source):
        errors.add("must provide exactly one of id or url", f"{pointer}/slack_file")
    for key in ("id", "url"):
        if key in source:
            _check_string(source[key], f"{pointer}/slack_file/{key}", errors, max_length=MAX_URL, min_length=1)


def _check_image_element(element: Mapping[str, Any], pointer: str, errors: _Errors) -> None:
    _check_keys(element, _IMAGE_KEYS, pointer, errors)
    _check_image_source(element, pointer, errors)
    _check_string(element.get("alt_text"), f"{pointer}/alt_text", errors, max_length=MAX_IMAGE_ALT_TEXT, min_length=1)


def _check_button(element: Mapping[str, Any], pointer: str, errors: _Errors) -> None:
    _check_keys(element, _BUTTON_KEYS, pointer, errors)
    _check_text_object(element.get("text"), f"{pointer}/text", errors, max_length=MAX_BUTTON_TEXT, plain_only=True)
    if "action_id" in element:
        _check_string(element["action_id"], f"{pointer}/action_id", errors, max_length=MAX_ACTION_ID, min_length=1)
    if "value" in element:
        _check_string(element["value"], f"{pointer}/value", errors, max_length=MAX_BUTTON_VALUE, min_length=1)
    if "url" in element:
        _check_string(element["url"], f"{pointer}/url", errors, max_length=MAX_URL, min_length=1)
    if "accessibility_label" in element:
        _check_string(element["accessibility_label"], f"{pointer}/accessibility_label", errors, max_length=75)
    if "style" in element and element["style"] not in BUTTON_STYLES:
        errors.add(f"must be one of {', '.join(BUTTON_STYLES)}", f"{pointer}/style")
    confirm = element.get("confirm")
    if confirm is not None:
        if not isinstance(confirm, dict):
            errors.add("expected a confirmation dialog object", f"{pointer}/confirm")
        else:
            _check_keys(confirm, _CONFIRM_KEYS, f"{pointer}/confirm", errors)
            _check_text_object(
                confirm.get("title"), f"{pointer}/confirm/title", errors, max_length=100, plain_only=True
            )
            _check_text_object(confirm.get("text"), f"{pointer}/confirm/text", errors, max_length=300)
            for key in ("confirm", "deny"):
                _check_text_object(confirm.get(key), f"{pointer}/confirm/{key}", errors, max_length=30, plain_only=True)


def _check_element(element: object, pointer: str, errors: _Errors, *, allowed: tuple[str, ...]) -> str | None:
    """Validate an interactive or image element; return its action_id, if any."""
    if not isinstance(element, dict):
        errors.add("expected an element object", pointer)
        return None
    kind = element.get("type")
    if kind not in allowed:
        errors.add(f"unsupported element type {kind!r} (the fake accepts {', '.join(allowed)})", f"{pointer}/type")
        return None
    if kind == "button":
        _check_button(element, pointer, errors)
        action_id = element.get("action_id")
        return action_id if isinstance(action_id, str) else None
    _check_image_element(element, pointer, errors)
    return None


def _check_elements(block: Mapping[str, Any], pointer: str, errors: _Errors, *, maximum: int) -> list[object]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        errors.add("must provide a non-empty array", f"{pointer}/elements")
        return []
    if len(elements) > maximum:
        errors.add(f"no more than {maximum} items allowed", f"{pointer}/elements")
    return elements


def _check_block(block: Mapping[str, Any], pointer: str, errors: _Errors) -> None:
    kind = block["type"]
    _check_keys(block, _BLOCK_KEYS[kind], pointer, errors)
    if kind == "section":
        if "text" not in block and "fields" not in block:
            errors.add("must provide text or fields", pointer)
        if "text" in block:
            _check_text_object(block["text"], f"{pointer}/text", errors, max_length=MAX_SECTION_TEXT)
        if "fields" in block:
            fields = block["fields"]
            if not isinstance(fields, list) or not fields:
                errors.add("must provide a non-empty array", f"{pointer}/fields")
            else:
                if len(fields) > MAX_SECTION_FIELDS:
                    errors.add(f"no more than {MAX_SECTION_FIELDS} items allowed", f"{pointer}/fields")
                for index, item in enumerate(fields):
                    _check_text_object(item, f"{pointer}/fields/{index}", errors, max_length=MAX_FIELD_TEXT)
        if "accessory" in block:
            _check_element(block["accessory"], f"{pointer}/accessory", errors, allowed=("button", "image"))
    elif kind == "image":
        _check_image_source(block, pointer, errors)
        _check_string(block.get("alt_text"), f"{pointer}/alt_text", errors, max_length=MAX_IMAGE_ALT_TEXT, min_length=1)
        if "title" in block:
            _check_text_object(block["title"], f"{pointer}/title", errors, max_length=MAX_IMAGE_TITLE, plain_only=True)
    elif kind == "header":
        _check_text_object(block.get("text"), f"{pointer}/text", errors, max_length=MAX_HEADER_TEXT, plain_only=True)
    elif kind == "context":
        for index, element in enumerate(_check_elements(block, pointer, errors, maximum=MAX_CONTEXT_ELEMENTS)):
            element_pointer = f"{pointer}/elements/{index}"
            if isinstance(element, dict) and element.get("type") in ("plain_text", "mrkdwn"):
                _check_text_object(element, element_pointer, errors)
            else:
                _check_element(element, element_pointer, errors, allowed=("image",))
    elif kind == "actions":
        seen: set[str] = set()
        for index, element in enumerate(_check_elements(block, pointer, errors, maximum=MAX_ACTIONS_ELEMENTS)):
            action_id = _check_element(element, f"{pointer}/elements/{index}", errors, allowed=("button",))
            if action_id is not None:
                if action_id in seen:
                    errors.add("action_id must be unique in the block", f"{pointer}/elements/{index}/action_id")
                seen.add(action_id)


def validate_blocks(blocks: object) -> list[str]:
    """Slack-style error strings for ``blocks`` (a decoded JSON array); empty when the fake accepts them."""
    errors = _Errors()
    if not isinstance(blocks, list):
        errors.add("expected an array of blocks", "/blocks")
        return errors.messages
    if len(blocks) > MAX_BLOCKS:
        errors.add(f"no more than {MAX_BLOCKS} items allowed", "/blocks")
    block_ids: set[str] = set()
    for index, block in enumerate(blocks):
        pointer = f"/blocks/{index}"
        if not isinstance(block, dict):
            errors.add("expected a block object", pointer)
            continue
        kind = block.get("type")
        if kind not in _BLOCK_KEYS:
            errors.add(
                f"unsupported block type {kind!r} (the fake accepts {', '.join(_BLOCK_KEYS)})", f"{pointer}/type"
            )
            continue
        if "block_id" in block:
            block_id = block["block_id"]
            _check_string(block_id, f"{pointer}/block_id", errors, max_length=MAX_BLOCK_ID, min_length=1)
            if isinstance(block_id, str):
                if block_id in block_ids:
                    errors.add("block_id must be unique in the message", f"{pointer}/block_id")
                block_ids.add(block_id)
        _check_block(block, pointer, errors)
    return errors.messages
