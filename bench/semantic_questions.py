"""The questions bench/semantic_cache.py asks: stored ones, their rewordings, and questions that
must not get a stored answer.

Stored questions are a help desk's: a question template ("How do I turn off {s}?") times a
subject ("the staging webhooks"). That makes the cache hard on purpose: every stored question
has neighbours that share its template or its subject and differ in one or two words, and a
reworded question counts as a hit only when it gets *its own* question's answer.

Rewordings (:data:`REWORDINGS`), each a function of the original question:

- ``casing``: upper case, lower case, title case;
- ``punctuation``: stripped, doubled, a question mark turned into a full stop, commas added;
- ``word_order``: the subject moved to the front ("the staging webhooks: how do I turn off?");
- ``filler``: greetings, "please", "could you tell me", "thanks!", "um", "btw", "again";
- ``typo``: one typo (two letters swapped, one dropped, doubled, or hit with its keyboard
  neighbour) in a word of five letters or more;
- ``mixed``: two of the above together (filler and a typo, casing and word order, ...).

Questions that must miss:

- ``unrelated``: everyday questions from other domains (cooking, travel, health, sport...), some
  sharing a word or two with the help desk's ("How much does a train ticket to Paris cost?");
- ``near_miss``: the help desk's templates with subjects that were never stored, and stored
  subjects with templates that were never stored. A lexical embedder serves some of them the
  answer of a neighbour: the figure shows how often.

Everything is generated from a seed: a run is repeatable.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["REWORDINGS", "Question", "QuestionSets", "build"]

# "{s}" is the subject. The part before it and the part after it are what word_order swaps.
TEMPLATES = [
    "How do I set up {s}?",
    "How do I turn off {s}?",
    "How do I delete {s}?",
    "How do I rename {s}?",
    "How do I move {s} to another account?",
    "How do I restore {s} from yesterday?",
    "How do I share {s} with a colleague?",
    "How do I test {s} before going live?",
    "How do I migrate {s} from the legacy system?",
    "How do I monitor {s} for errors?",
    "How do I export {s} as a spreadsheet?",
    "How do I import {s} from a CSV file?",
    "How do I automate {s} with the command line tool?",
    "How do I configure {s} through Terraform?",
    "How do I reset {s} to the default settings?",
    "How do I lock down {s} for compliance?",
    "How do I speed up {s}?",
    "How do I debug {s} when nothing shows up?",
    "How do I schedule changes to {s} for the weekend?",
    "How do I audit who changed {s}?",
    "Why is {s} not working after the upgrade?",
    "Why is {s} so slow today?",
    "Why does {s} show a permission error?",
    "Why did {s} stop syncing overnight?",
    "Why can't my manager see {s}?",
    "Why does {s} keep timing out?",
    "Why is {s} missing from the sidebar?",
    "Why was I charged extra for {s}?",
    "Why does {s} look different on mobile?",
    "Why are duplicate entries appearing in {s}?",
    "What does {s} cost per month?",
    "What are the limits on {s}?",
    "What permissions are required for {s}?",
    "What happens to {s} when my trial ends?",
    "What changed in {s} with the latest release?",
    "What is the retention period for {s}?",
    "What format does {s} use?",
    "What region stores {s}?",
    "What is the difference between {s} and the old version?",
    "What alerts exist for {s}?",
    "Where can I find {s} in the dashboard?",
    "Where are the logs for {s} kept?",
    "Where do I report a bug in {s}?",
    "Where is the documentation for {s}?",
    "Where can I download the invoice for {s}?",
    "Can I use {s} with single-tenant hosting?",
    "Can I limit {s} to certain IP addresses?",
    "Can I roll back {s} to an earlier version?",
    "Can I get notified whenever {s} changes?",
    "Can I manage {s} through the REST API?",
    "Can I encrypt {s} with my own key?",
    "Can I copy {s} between workspaces?",
    "Can I rate limit {s} per customer?",
    "Can I pause {s} during maintenance?",
    "Can I grant read-only access to {s}?",
    "Is {s} included in the free plan?",
    "Is {s} compliant with GDPR?",
    "Is {s} available in the European data center?",
    "Is there an uptime guarantee for {s}?",
    "Is {s} backed up automatically?",
    "Who can approve changes to {s}?",
    "Who gets billed for {s}?",
    "Who do I contact about an outage of {s}?",
    "When will {s} support webhooks signing?",
    "When does {s} renew?",
    "When are maintenance windows for {s}?",
    "Which browsers support {s}?",
    "Which plan unlocks {s}?",
    "Which SDK versions work with {s}?",
    "Which events does {s} emit?",
    "How many seats does {s} include?",
    "How long does {s} take to propagate?",
    "How often is {s} refreshed?",
    "How much storage does {s} use?",
    "How secure is {s}?",
    "Does {s} work offline?",
    "Does {s} support single sign-on?",
    "Does {s} count towards my quota?",
    "Does {s} have an audit trail?",
    "Does {s} scale to a million users?",
]

NOUNS = [
    "API keys",
    "webhooks",
    "billing invoices",
    "audit logs",
    "user roles",
    "team invitations",
    "data exports",
    "email notifications",
    "usage reports",
    "custom domains",
    "IP allowlists",
    "service accounts",
    "scheduled jobs",
    "search indexes",
    "file uploads",
    "payment methods",
    "support tickets",
    "analytics dashboards",
    "alert rules",
    "access tokens",
    "password policies",
    "database snapshots",
    "deployment pipelines",
    "feature flags",
    "storage buckets",
]
QUALIFIERS = ["the", "the production", "the staging", "the sandbox", "our enterprise"]

# Never stored: the near misses' subjects and templates.
UNSTORED_NOUNS = ["push notifications", "GraphQL endpoints", "chat widgets", "mobile apps"]
UNSTORED_TEMPLATES = [
    "How do I duplicate {s}?",
    "Why is {s} greyed out?",
    "What is the maximum size of {s}?",
    "Can I translate {s} into French?",
    "Who owns {s} after an employee leaves?",
    "Does {s} support dark mode?",
]

UNRELATED_TEMPLATES = {
    "food": [
        "What is a good recipe for {x}?",
        "How long should I cook {x}?",
        "Where can I buy fresh {x} near me?",
        "Is {x} healthy to eat every day?",
        "Can I freeze {x}?",
        "What wine goes well with {x}?",
    ],
    "place": [
        "How much does a train ticket to {x} cost?",
        "What is the best time of year to visit {x}?",
        "Do I need a visa to travel to {x}?",
        "Which museums should I see in {x}?",
        "What language do people speak in {x}?",
        "Is {x} safe for tourists at night?",
    ],
    "sport": [
        "How do I train for a {x}?",
        "What shoes are best for a {x}?",
        "How many calories does a {x} burn?",
        "What should I eat the day before a {x}?",
    ],
    "event": [
        "Who won the last {x}?",
        "When does the next {x} start?",
        "How do I get tickets for the {x}?",
    ],
    # Everyday gadgets in the help desk's own words: "Why is my phone so slow today?"
    "device": [
        "Why is my {x} so slow today?",
        "How do I reset my {x} to factory settings?",
        "Where can I buy a new {x}?",
        "How do I turn off my {x}?",
    ],
}
UNRELATED_VALUES = {
    "food": [
        "salmon", "lentils", "sourdough bread", "risotto", "brussels sprouts", "pancakes", "tofu", "quinoa",
        "pumpkin soup", "chicken curry", "apple pie", "falafel", "lasagna", "sushi rice", "roast potatoes",
        "banana bread", "mushroom stroganoff", "paella", "ratatouille", "beef stew", "carrot cake", "ramen",
        "hummus", "granola", "couscous",
    ],
    "place": [
        "Paris", "Kyoto", "Lisbon", "Buenos Aires", "Nairobi", "Reykjavik", "Vancouver", "Istanbul", "Hanoi",
        "Prague", "Marrakesh", "Santiago", "Edinburgh", "Seoul", "Cape Town", "Oslo", "Havana", "Vienna",
        "Lima", "Budapest", "Melbourne", "Dubrovnik", "Montreal", "Bangkok", "Athens",
    ],
    "sport": [
        "marathon", "half marathon", "triathlon", "mountain hike", "cycling tour", "swim across the lake",
        "ski season", "rowing race", "boxing match", "climbing trip", "yoga retreat", "football tournament",
    ],
    "event": [
        "football world cup", "chess olympiad", "tennis open", "cycling grand tour", "baking championship",
        "song contest", "film festival", "book fair", "sailing regatta", "jazz festival",
    ],
    "device": [
        "phone", "laptop", "printer", "smart watch", "router", "television", "tablet", "game console",
        "e-reader", "dishwasher",
    ],
}  # fmt: skip
UNRELATED_SINGLES = [
    "Why is the sky blue?",
    "How do vaccines work?",
    "What causes thunderstorms?",
    "How do I fix a leaking tap?",
    "What is the capital of Australia?",
    "How do I repot a cactus?",
    "How do I teach my dog to sit?",
    "What is the boiling point of water at altitude?",
    "How do I knit a scarf?",
    "Who painted the Mona Lisa?",
    "How far away is the moon?",
    "How do I remove a red wine stain?",
    "What should I plant in a shady garden?",
    "How does compound interest work?",
    "How do I change a flat bicycle tyre?",
    "Why do cats purr?",
    "How long do I steep green tea?",
    "How do I improve my handwriting?",
    "What is the tallest mountain in Africa?",
    "How do solar panels generate electricity?",
]

FILLER_PREFIXES = [
    "Hi, ",
    "Hello! Quick question: ",
    "Um, ",
    "Hey there, could you tell me: ",
    "I was wondering: ",
    "Sorry to bother you, ",
    "Btw, ",
]
FILLER_SUFFIXES = [" please", " Thanks!", " Thank you so much.", " Any help appreciated.", " (asking again)"]

# Keyboard neighbours for substitution typos (QWERTY).
_NEIGHBOURS = {
    row[i]: row[max(0, i - 1)] + row[i + 1 : i + 2]
    for row in ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    for i in range(len(row))
}


@dataclass(frozen=True)
class Question:
    """A question and the stored question whose answer it should get (``None``: none)."""

    text: str
    expected: str | None
    kind: str


@dataclass(frozen=True)
class QuestionSets:
    stored: list[str]
    reworded: list[Question]
    unrelated: list[Question]
    near_miss: list[Question]


def _split(question: str) -> tuple[str, str, str]:
    """(before the subject, the subject, after it), for questions built from TEMPLATES."""
    for template in TEMPLATES:
        before, after = template.split("{s}")
        if question.startswith(before) and question.endswith(after):
            return before, question[len(before) : len(question) - len(after)], after
    raise ValueError(f"not built from a template: {question!r}")


def casing(question: str, rng: random.Random) -> str:
    return rng.choice([str.upper, str.lower, str.title])(question)


def punctuation(question: str, rng: random.Random) -> str:
    stripped = question.rstrip("?")
    choice = rng.randrange(4)
    if choice == 0:
        return question.translate(str.maketrans("", "", string.punctuation))
    if choice == 1:
        return stripped + "??"
    if choice == 2:
        return stripped + "."
    words = stripped.split()
    cut = rng.randrange(1, len(words))
    return " ".join(words[:cut]) + ", " + " ".join(words[cut:]) + "?!"


def word_order(question: str, rng: random.Random) -> str:
    before, subject, after = _split(question)
    rest = (before.strip() + " " + after.strip().rstrip("?")).strip()
    joiner = rng.choice([": ", " - ", ", "])
    return f"{subject}{joiner}{rest[:1].lower()}{rest[1:]}?"


def filler(question: str, rng: random.Random) -> str:
    choice = rng.randrange(3)
    prefix = rng.choice(FILLER_PREFIXES)
    suffix = rng.choice(FILLER_SUFFIXES)
    lowered = question[:1].lower() + question[1:]
    if choice == 0:
        return prefix + lowered
    if choice == 1:
        return question + suffix
    return prefix + lowered + suffix


def typo(question: str, rng: random.Random) -> str:
    words = re.findall(r"[A-Za-z]{5,}", question)
    word = rng.choice(words)
    i = rng.randrange(1, len(word) - 1)  # people rarely mistype a word's first letter
    kind = rng.randrange(4)
    if kind == 0:
        typed = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    elif kind == 1:
        typed = word[:i] + word[i + 1 :]
    elif kind == 2:
        typed = word[:i] + word[i] + word[i:]
    else:
        neighbours = _NEIGHBOURS.get(word[i].lower(), word[i])
        typed = word[:i] + rng.choice(neighbours) + word[i + 1 :]
    return re.sub(rf"\b{re.escape(word)}\b", typed, question, count=1)


def mixed(question: str, rng: random.Random) -> str:
    # word_order first: it needs the template's wording intact.
    first, second = rng.sample([casing, punctuation, word_order, filler, typo], 2)
    if second is word_order:
        first, second = second, first
    return second(first(question, rng), rng)


REWORDINGS: dict[str, Callable[[str, random.Random], str]] = {
    "casing": casing,
    "punctuation": punctuation,
    "word_order": word_order,
    "filler": filler,
    "typo": typo,
    "mixed": mixed,
}


def stored_questions() -> list[str]:
    subjects = [f"{qualifier} {noun}" for noun in NOUNS for qualifier in QUALIFIERS]
    return [template.replace("{s}", subject) for template in TEMPLATES for subject in subjects]


def unrelated_questions() -> list[str]:
    questions = list(UNRELATED_SINGLES)
    for domain, templates in UNRELATED_TEMPLATES.items():
        questions += [template.replace("{x}", value) for template in templates for value in UNRELATED_VALUES[domain]]
    return questions


def near_misses() -> list[str]:
    unstored_subjects = [f"{qualifier} {noun}" for noun in UNSTORED_NOUNS for qualifier in QUALIFIERS]
    stored_subjects = [f"{qualifier} {noun}" for noun in NOUNS for qualifier in QUALIFIERS]
    questions = [t.replace("{s}", s) for t in TEMPLATES for s in unstored_subjects]
    questions += [t.replace("{s}", s) for t in UNSTORED_TEMPLATES for s in stored_subjects]
    return questions


def build(*, stored: int = 10_000, reworded_per_kind: int = 500, misses: int = 500, seed: int = 20) -> QuestionSets:
    """``stored`` questions (at most 10,000), ``reworded_per_kind`` rewordings of each kind (of
    stored questions picked at random), and up to ``misses`` unrelated questions and near misses."""
    rng = random.Random(seed)
    every = stored_questions()
    if stored > len(every):
        raise ValueError(f"at most {len(every)} stored questions")
    kept = rng.sample(every, stored)
    reworded = [
        Question(reword(original, rng), original, kind)
        for kind, reword in REWORDINGS.items()
        for original in rng.choices(kept, k=reworded_per_kind)
    ]
    unrelated = rng.sample(unrelated_questions(), min(misses, len(unrelated_questions())))
    near = rng.sample(near_misses(), min(misses, len(near_misses())))
    return QuestionSets(
        stored=kept,
        reworded=reworded,
        unrelated=[Question(text, None, "unrelated") for text in unrelated],
        near_miss=[Question(text, None, "near_miss") for text in near],
    )
