"""Generated support tickets in English and Japanese (CC0 1.0: written for keizoku).

``tickets(n, seed)`` makes rows ``message, channel, amount, topic``: a greeting, one or
two sentences and a closing, in English or Japanese (half the rows each). A sentence puts
a noun of its topic (billing, delivery, account) with a predicate every topic shares, a
time, a product and an order number, so the topic is in the words while whole sentences
(and Japanese clauses between punctuation, what a whitespace tokenizer makes of them)
almost never repeat, as in real messages. ``shifted=True`` uses the nouns of another kind
of message (a product recall and safety complaints) with the same greetings, predicates
and other columns: the vocabulary moves, nothing else does. ``examples/data/tickets.csv``
is ``tickets(360, 0)``: ``python tests/text_support.py examples/data/tickets.csv``.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from kzsupport import KEIZOKU_EXE, REPO, CliResult, json_records

TICKETS = REPO / "examples" / "data" / "tickets.csv"

NOUNS = {
    "billing": (["invoice", "charge", "refund", "payment", "receipt", "bill", "fee"],
                ["請求書", "請求", "返金", "支払い", "領収書", "料金", "手数料"]),
    "delivery": (["package", "parcel", "courier", "shipment", "delivery", "box", "tracking"],
                 ["荷物", "小包", "配達員", "発送", "配達", "箱", "追跡番号"]),
    "account": (["password", "login", "account", "profile", "username", "email address",
                 "verification code"],
                ["パスワード", "ログイン", "アカウント", "プロフィール", "ユーザー名",
                 "メールアドレス", "認証コード"]),
}  # fmt: skip
SHIFTED = (["battery", "fire risk", "smoke", "recall", "charger", "overheating", "sparks"],
           ["バッテリー", "火災", "煙", "リコール", "充電器", "過熱", "火花"])  # fmt: skip
PREDICATES = (["is wrong", "has a problem", "is not correct", "needs to be checked",
               "was changed without notice", "is still pending", "worries me"],
              ["が間違っています", "に問題があります", "がおかしいです", "を確認してください",
               "が勝手に変更されました", "がまだ保留中です", "が心配です"])  # fmt: skip
WHEN = (["Yesterday", "Last week", "This morning", "Two days ago", "Again today", "On Monday"],
        ["昨日", "先週", "今朝", "二日前に", "今日もまた", "月曜日に"])  # fmt: skip
GREET = (["Hello,", "Hi team,", "Good morning,", "Dear support,"],
         ["こんにちは。", "お世話になっております。", "おはようございます。",
          "サポートご担当者様"])  # fmt: skip
CLOSE = (["Thank you.", "Regards.", "Please help.", "Thanks in advance."],
         ["よろしくお願いします。", "ありがとうございます。", "至急対応してください。",
          "ご確認ください。"])  # fmt: skip
PRODUCTS = (["kettle", "headphones", "desk lamp", "blender", "backpack"],
            ["電気ケトル", "ヘッドホン", "デスクライト", "ミキサー", "リュック"])  # fmt: skip


def _sentence(rng: random.Random, nouns: list[str], i: int) -> str:
    when, noun, pred = rng.choice(WHEN[i]), rng.choice(nouns), rng.choice(PREDICATES[i])
    order, product = rng.randint(10000, 99999), rng.choice(PRODUCTS[i])
    if i:
        return f"{when}、注文{order}の{product}の{noun}{pred}。"
    return f"{when} the {noun} of my {product} (order {order}) {pred}."


def _message(rng: random.Random, nouns: list[str], ja: bool) -> str:
    i = int(ja)
    body = [_sentence(rng, nouns, i) for _ in range(rng.choice((1, 2)))]
    return ("" if ja else " ").join([rng.choice(GREET[i]), *body, rng.choice(CLOSE[i])])


def tickets(n: int, seed: int = 0, *, shifted: bool = False) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for k in range(n):
        topic = list(NOUNS)[k % len(NOUNS)]
        ja = rng.random() < 0.5
        nouns = SHIFTED[int(ja)] if shifted else NOUNS[topic][int(ja)]
        rows.append(
            {
                "message": _message(rng, nouns, ja),
                "channel": rng.choice(["email", "chat", "phone"]),
                "amount": round(rng.lognormvariate(3, 0.8), 2),
                "topic": topic,
            }
        )
    return pd.DataFrame(rows)


class Project:
    """A project folder with its own ``KEIZOKU_HOME``; ``run`` is the real executable."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / ".keizoku"
        self.env = {**os.environ, "COLUMNS": "200", "KEIZOKU_HOME": str(self.home)}

    def run(self, *args: str) -> CliResult:
        proc = subprocess.run([KEIZOKU_EXE, *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        return CliResult(proc)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` as a client sends them, without the target."""
    return json_records(frame.drop(columns="topic"))


if __name__ == "__main__":
    tickets(360, 0).to_csv(sys.argv[1], index=False)
