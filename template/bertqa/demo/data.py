"""Generated SQuAD v2-style passages about invented towns, with answerable and unanswerable questions.

Deterministic for a seed. Passages mix fact sentences with filler, so many span several windows;
names carry accents and punctuation so that answers must be cut from the passage exactly.
"""

from __future__ import annotations

import random
from typing import Iterator

_SYLLABLES = ["val", "dor", "mir", "en", "thal", "ka", "ros", "bel", "lin", "quar", "sen", "tor", "ve",
              "na", "gra", "fel", "mo", "ris", "zan", "ul", "ber", "co", "dri", "ash", "em", "lo"]
_ACCENTED = ["é", "ö", "ü", "á", "ñ", "ç", "í"]
_FIRST = ["Anna", "Élodie", "Marek", "Jonas", "Inés", "Farid", "Grete", "Tomás", "Lucia", "Øyvind", "Priya",
          "Henrik", "Zoë", "Kofi", "Mirela", "José", "Aino", "Björn", "Chiara", "Dmitri"]
_INDUSTRIES = ["glassblowing", "salt mining", "clockmaking", "wool weaving", "shipbuilding", "cheese making",
               "paper milling", "copper smelting", "olive pressing", "rope making", "silk dyeing", "boat repair"]
_DISHES = ["pickled herring", "barley stew", "plum dumplings", "smoked trout", "honey bread", "lentil soup",
           "fried cheese", "chestnut cake", "beet salad", "walnut pie"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_FILLER = [
    "The streets near the old square are narrow and paved with grey stone.",
    "Many houses have red tiled roofs and small gardens behind them.",
    "In winter the hills around the valley are often covered with snow.",
    "A small museum near the station shows tools, maps and old photographs.",
    "Local buses run every hour, although fewer run on Sundays.",
    "Travellers describe the market as busy, loud and full of colour.",
    "Several footpaths lead from the centre into the surrounding forest.",
    "The town library was rebuilt after a fire damaged its east wing.",
    "Farmers from nearby villages sell vegetables there twice a week.",
    "An old stone bridge crosses the stream at the edge of the park.",
    "Summer evenings are warm, and the cafés stay open late.",
    "The church tower can be seen from almost every part of the town.",
]


def _name(rng: random.Random, parts: int) -> str:
    word = "".join(rng.choice(_SYLLABLES) for _ in range(parts))
    if rng.random() < 0.3:
        position = rng.randrange(1, len(word))
        word = word[:position] + rng.choice(_ACCENTED) + word[position + 1:]
    return word.capitalize()


def _person(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {_name(rng, 2)}"


# attribute -> (text before the answer, answer, text after it, question); {town} is the passage's town.
def _facts(rng: random.Random, town: str) -> dict[str, tuple[str, str, str, str]]:
    year = str(rng.randrange(1100, 1990))
    mayor = _person(rng)
    river = _name(rng, 2) + " River"
    population = f"{rng.randrange(2, 95)},{rng.randrange(0, 1000):03d}"
    industry = rng.choice(_INDUSTRIES)
    dish = rng.choice(_DISHES)
    month = rng.choice(_MONTHS)
    twin = _name(rng, 3)
    height = f"{rng.randrange(20, 2400)} metres"
    founder = _person(rng)
    return {
        "founded": (f"{town} was founded in ", year, ".", f"When was {town} founded?"),
        "founder": ("Its founder was ", founder, ", a trader from the coast.", f"Who founded {town}?"),
        "mayor": (f"The current mayor of {town} is ", mayor, ".", f"Who is the mayor of {town}?"),
        "river": ("The ", river, f" flows through the middle of {town}.", f"Which river flows through {town}?"),
        "population": (f"{town} has a population of ", population, " people.",
                       f"What is the population of {town}?"),
        "industry": (f"The main industry in {town} is ", industry, ".", f"What is the main industry in {town}?"),
        "dish": (f"Visitors to {town} often try ", dish, ", the local speciality.",
                 f"What local speciality do visitors to {town} try?"),
        "festival": ("Every year in ", month, f", {town} holds a lantern festival.",
                     f"In which month does {town} hold its lantern festival?"),
        "twin": (f"{town} is twinned with the town of ", twin, ".", f"Which town is {town} twinned with?"),
        "height": (f"{town} lies ", height, " above sea level.", f"How high above sea level does {town} lie?"),
    }


def generate(seed: int, passages: int, long_share: float = 0.3) -> Iterator[dict]:
    """SQuAD v2-style JSONL records: each passage states some facts; questions ask for stated ones
    (answerable) and for missing ones (unanswerable, empty `answers`)."""
    rng = random.Random(seed)
    for number in range(passages):
        town = _name(rng, rng.choice([2, 3]))
        facts = _facts(rng, town)
        stated = rng.sample(sorted(facts), rng.randrange(3, 7))
        missing = [key for key in sorted(facts) if key not in stated]
        filler_count = rng.randrange(10, 16) if rng.random() < long_share else rng.randrange(0, 4)
        sentence = {key: "".join(facts[key][:3]) for key in stated}
        sentences = list(sentence.values()) + rng.sample(_FILLER, min(filler_count, len(_FILLER)))
        rng.shuffle(sentences)
        context = " ".join(sentences)
        asked = rng.sample(stated, min(len(stated), 3)) + rng.sample(missing, min(len(missing), 1))
        for index, key in enumerate(asked):
            before, answer, _, question = facts[key]
            record = {"id": f"s{seed}-p{number}-q{index}", "question": question, "context": context}
            if key in stated:
                start = context.index(sentence[key]) + len(before)
                record["answers"] = [{"text": answer, "answer_start": start}]
            else:
                record["answers"] = []
            yield record
