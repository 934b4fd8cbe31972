"""Sentence / word tokenizers: rules, stream == batch for any chunking, blocking iteration."""

from __future__ import annotations

import random

import gevent
import gevent.event
import pytest

from syncagents import tokenize
from syncagents.tokenize import TokenData, basic

# livekit-agents' reference text and its expected output with min_sentence_len=20 (older
# and newer forms of their test), so users moving over keep the same sentences
LK_TEXT = (
    "Hi! "
    "LiveKit is a platform for live audio and video applications and services. "
    "R.T.C stands for Real-Time Communication... again R.T.C. "
    "Mr. Theo is testing the sentence tokenizer. "
    "This is a test. Another test. "
    "A short sentence. "
    "A longer sentence that is longer than the previous sentence. "
    "f(x) = x * 2.54 + 42. "
    "Hey! Hi! Hello! "
)
LK_EXPECTED = [
    "Hi! LiveKit is a platform for live audio and video applications and services.",
    "R.T.C stands for Real-Time Communication... again R.T.C.",
    "Mr. Theo is testing the sentence tokenizer.",
    "This is a test. Another test.",
    "A short sentence. A longer sentence that is longer than the previous sentence.",
    "f(x) = x * 2.54 + 42.",
    "Hey! Hi! Hello!",
]
LK_TEXT_2 = (
    "Hi! "
    "LiveKit is a platform for live audio and video applications and services. \n\n"
    "R.T.C stands for Real-Time Communication... again R.T.C. "
    "Mr. Theo is testing the sentence tokenizer. "
    "\nThis is a test. Another test. "
    "A short sentence.\n"
    "A longer sentence that is longer than the previous sentence. "
    "f(x) = x * 2.54 + 42. "
    "Hey!\n Hi! Hello! "
    "\n\n"
    "This is a sentence. 这是一个中文句子。これは日本語の文章です。"
    "你好！LiveKit是一个直播音频和视频应用程序和服务的平台。"
    "\nThis is a sentence contains   consecutive spaces."
)
LK_EXPECTED_2 = [
    "Hi! LiveKit is a platform for live audio and video applications and services.",
    "R.T.C stands for Real-Time Communication... again R.T.C.",
    "Mr. Theo is testing the sentence tokenizer.",
    "This is a test. Another test.",
    "A short sentence. A longer sentence that is longer than the previous sentence.",
    "f(x) = x * 2.54 + 42.",
    "Hey! Hi! Hello! This is a sentence.",
    "这是一个中文句子。 これは日本語の文章です。",
    "你好！ LiveKit是一个直播音频和视频应用程序和服务的平台。",
    "This is a sentence contains   consecutive spaces.",
]

TRICKY_TEXTS = [
    LK_TEXT,
    LK_TEXT_2,
    "Dr. Smith met Mrs. Jones at St. Mary's. They talked, e.g. about the U.S. economy.",
    "Pi is 3.14 and e is 2.718. Prices rose 2.5% in the U.S. The Fed reacted.",
    "Wait... What? I thought... maybe not. Hmm…  Really?! Yes!!! \"Stop.\" Then silence.",
    'He said "Go home." She didn\'t. (It was late.) Apples, pears, etc. and more.',
    "No. 5 is mine. No. It is not. Visit livekit.io or docs.livekit.io. Ok.",
    "J. R. R. Tolkien wrote books. Plan B. Then plan C.",
    "   leading space. trailing space.   ",
    "One sentence without a terminal",
    "",
    "?!?! ... … . .",
    "Meet at 5 p.m. Then we eat. Call Acme Inc. He will answer.",
]


def chunked(text: str, rng: random.Random, max_len: int = 8) -> list[str]:
    out, i = [], 0
    while i < len(text):
        n = rng.randint(1, max_len)
        out.append(text[i : i + n])
        i += n
    return out


def run_stream(stream: tokenize.TokenStream, chunks: list[str]) -> list[TokenData]:
    for c in chunks:
        stream.push_text(c)
    stream.end_input()
    with gevent.Timeout(5):
        return list(stream)


# random texts built from the pieces that the rules look at
FUZZ_PIECES = [
    "Dr.", "Mr.", "U.S.", "3.14", "...", "…", "?!", '"', "'", "etc.", "e.g.", "No.", "5",
    "\n", "。", "！", "Hello", "world", "The", "Theory", "he", "it.", "A.", "(", ")", "”",
    "Hi!", "?", ".", "!", "St.", "livekit.io", "R.T.C.", "x", "Ok.", 'done?"', "wow!!",
]


def fuzz_text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 40)):
        parts.append(rng.choice(FUZZ_PIECES))
        parts.append(rng.choice(["", " ", " ", " ", "\n", "  "]))
    return "".join(parts)


# ---- batch rules -------------------------------------------------------------------------


def test_livekit_reference_texts_batch_and_stream() -> None:
    tok = basic.SentenceTokenizer(min_sentence_len=20)
    for text, expected in ((LK_TEXT, LK_EXPECTED), (LK_TEXT_2, LK_EXPECTED_2)):
        assert tok.tokenize(text) == expected
        # livekit's own chunking pattern: 1, 2, 4, 1, 2, 4, ...
        chunks, i, sizes = [], 0, [1, 2, 4]
        while i < len(text):
            n = sizes[len(chunks) % 3]
            chunks.append(text[i : i + n])
            i += n
        assert [t.token for t in run_stream(tok.stream(), chunks)] == expected


def test_abbreviations_do_not_split() -> None:
    tok = basic.SentenceTokenizer(min_sentence_len=0)
    assert tok.tokenize("Dr. Smith and Mr. Jones met Mrs. Brown on St. Mark's Square. Then "
                        "they left.") == [
        "Dr. Smith and Mr. Jones met Mrs. Brown on St. Mark's Square.",
        "Then they left.",
    ]
    assert tok.tokenize("Use fruit, e.g. Apples or i.e. Pears. Tools, etc. and more.") == [
        "Use fruit, e.g. Apples or i.e. Pears.",
        "Tools, etc. and more.",
    ]
    # an abbreviation that also ends sentences splits only before a sentence starter
    assert tok.tokenize("The U.S. Army is big. It is in the U.S. They know.") == [
        "The U.S. Army is big.",
        "It is in the U.S.",
        "They know.",
    ]
    assert tok.tokenize("We sell pens, paper, etc. The shop opens at 9 a.m. on Monday.") == [
        "We sell pens, paper, etc.",
        "The shop opens at 9 a.m. on Monday.",
    ]


def test_decimals_numbers_and_domains() -> None:
    tok = basic.SentenceTokenizer(min_sentence_len=0)
    assert tok.tokenize("Pi is about 3.14 and e is 2.718. Visit livekit.io today. No. 5 wins.") == [
        "Pi is about 3.14 and e is 2.718.",
        "Visit livekit.io today.",
        "No. 5 wins.",
    ]


def test_ellipses_question_and_exclamation() -> None:
    tok = basic.SentenceTokenizer(min_sentence_len=0)
    assert tok.tokenize("Wait... What happened? I think... maybe not. Hmm… Really?! Yes!!") == [
        "Wait...",
        "What happened?",
        "I think... maybe not.",
        "Hmm…",
        "Really?!",
        "Yes!!",
    ]


def test_quotes_stay_with_their_sentence() -> None:
    tok = basic.SentenceTokenizer(min_sentence_len=0)
    assert tok.tokenize('He said "Stop." Then he left. “Are you sure?” It was late.') == [
        'He said "Stop."',
        "Then he left.",
        "“Are you sure?”",
        "It was late.",
    ]


def test_short_sentences_merge_with_the_next() -> None:
    tok = basic.SentenceTokenizer(min_sentence_len=20)
    assert tok.tokenize("Hi. I am here. This one is long enough. Ok. Bye.") == [
        "Hi. I am here. This one is long enough.",
        "Ok. Bye.",  # the tail is emitted even when short
    ]
    # a sentence of exactly min_sentence_len characters stands alone
    twenty = "Abcdefghijklmnopqrs."
    assert len(twenty) == 20
    assert tok.tokenize(f"{twenty} Next one here.") == [twenty, "Next one here."]
    assert basic.SentenceTokenizer(min_sentence_len=0).tokenize("Hi. Yo.") == ["Hi.", "Yo."]


def test_empty_and_whitespace_text() -> None:
    tok = basic.SentenceTokenizer()
    assert tok.tokenize("") == []
    assert tok.tokenize("  \n ") == []
    assert [t.token for t in run_stream(tok.stream(), ["", "   "])] == []


# ---- stream == batch ---------------------------------------------------------------------


@pytest.mark.parametrize("min_len", [0, 1, 20, 60])
def test_sentence_stream_equals_batch_for_any_chunking(min_len: int) -> None:
    tok = basic.SentenceTokenizer(min_sentence_len=min_len)
    for seed in range(40):
        rng = random.Random(seed)
        for text in TRICKY_TEXTS:
            expected = tok.tokenize(text)
            got = run_stream(tok.stream(), chunked(text, rng, max_len=rng.choice([1, 3, 8, 30])))
            assert [t.token for t in got] == expected, (seed, text)


def test_sentence_stream_equals_batch_on_fuzzed_texts() -> None:
    for seed in range(600):
        rng = random.Random(1000 + seed)
        text = fuzz_text(rng)
        tok = basic.SentenceTokenizer(min_sentence_len=rng.choice([0, 10, 20]))
        got = run_stream(tok.stream(), chunked(text, rng, max_len=6))
        assert [t.token for t in got] == tok.tokenize(text), (seed, text)


def test_every_two_chunk_split_equals_batch() -> None:
    tok = basic.SentenceTokenizer(min_sentence_len=0)
    for text in TRICKY_TEXTS[2:8]:
        expected = tok.tokenize(text)
        for cut in range(len(text) + 1):
            got = run_stream(tok.stream(), [text[:cut], text[cut:]])
            assert [t.token for t in got] == expected, (cut, text)


def test_word_tokenizer_batch_and_stream() -> None:
    text = "This is a test. Blabla another test! multiple consecutive spaces:     done"
    expected = ["This", "is", "a", "test", "Blabla", "another", "test", "multiple",
                "consecutive", "spaces", "done"]
    tok = basic.WordTokenizer()
    assert tok.tokenize(text) == expected
    assert basic.WordTokenizer(ignore_punctuation=False).tokenize("Hi, you! — don't.") == [
        "Hi,", "you!", "—", "don't.",
    ]
    assert tok.tokenize("Hi, you! — don't 3.14.") == ["Hi", "you", "don't", "3.14"]
    for seed in range(200):
        rng = random.Random(seed)
        text = fuzz_text(rng) if seed % 2 else rng.choice(TRICKY_TEXTS)
        for t in (basic.WordTokenizer(), basic.WordTokenizer(ignore_punctuation=False)):
            got = run_stream(t.stream(), chunked(text, rng, max_len=5))
            assert [d.token for d in got] == t.tokenize(text), (seed, text)


# ---- stream behaviour --------------------------------------------------------------------


def test_sentence_is_released_only_once_complete() -> None:
    stream = basic.SentenceTokenizer(min_sentence_len=0).stream()
    stream.push_text("Dr")
    stream.push_text(". Smith is here")
    with pytest.raises(TimeoutError):
        stream.get(timeout=0.05)  # "Dr." is not a sentence end
    stream.push_text(". The U.S.")
    first = stream.get(timeout=1)
    assert first is not None and first.token == "Dr. Smith is here."
    with pytest.raises(TimeoutError):
        stream.get(timeout=0.05)  # "U.S." may still be followed by a non-starter
    stream.push_text(" Army")
    with pytest.raises(TimeoutError):
        stream.get(timeout=0.05)
    stream.end_input()
    last = stream.get(timeout=1)
    assert last is not None and last.token == "The U.S. Army"
    assert stream.get(timeout=1) is None


def test_iteration_ends_after_end_input_and_rejects_more_text() -> None:
    stream = basic.SentenceTokenizer().stream()
    stream.push_text("A first sentence that is long. And the second one here")
    stream.end_input()
    with gevent.Timeout(5):
        tokens = [t.token for t in stream]
    assert tokens == ["A first sentence that is long.", "And the second one here"]
    with gevent.Timeout(5):
        assert list(stream) == []
    with pytest.raises(RuntimeError):
        stream.push_text("more")


def test_flush_ends_a_segment() -> None:
    stream = basic.SentenceTokenizer(min_sentence_len=20).stream()
    stream.push_text("Short one. Another")
    stream.flush()
    stream.push_text("This is the second segment. Ok.")
    stream.flush()
    stream.flush()  # nothing buffered: no empty token
    stream.end_input()
    with gevent.Timeout(5):
        tokens = list(stream)
    assert [t.token for t in tokens] == [
        "Short one. Another", "This is the second segment.", "Ok.",
    ]
    assert tokens[0].segment_id != tokens[1].segment_id
    assert tokens[1].segment_id == tokens[2].segment_id
    assert all(t.segment_id for t in tokens)


def test_consumer_sees_sentences_while_producer_pushes() -> None:
    stream = basic.SentenceTokenizer(min_sentence_len=0).stream()
    got_first = gevent.event.Event()
    received: list[str] = []

    def consume() -> None:
        for t in stream:
            received.append(t.token)
            got_first.set()

    def produce() -> None:
        for word in ["The", "first", "sentence", "is", "here.", "The", "second"]:
            stream.push_text(word + " ")
        # the first sentence must reach the consumer before any more input arrives
        assert got_first.wait(timeout=5), "consumer did not see the first sentence"
        assert received == ["The first sentence is here."]
        stream.push_text("one arrives later.")
        stream.end_input()

    consumer = gevent.spawn(consume)
    producer = gevent.spawn(produce)
    try:
        gevent.joinall([producer, consumer], timeout=10, raise_error=True)
        assert producer.successful() and consumer.successful()
    finally:
        gevent.killall([producer, consumer])
    assert received == ["The first sentence is here.", "The second one arrives later."]


def test_close_from_another_greenlet_ends_iteration() -> None:
    stream = basic.WordTokenizer().stream()
    stream.push_text("hello wor")
    seen: list[str] = []
    first = gevent.event.Event()

    def consume() -> None:
        for t in stream:
            seen.append(t.token)
            first.set()

    g = gevent.spawn(consume)
    try:
        # after "hello" the consumer blocks waiting for the unfinished word
        assert first.wait(timeout=5)
        stream.close()
        g.join(timeout=5)
        assert g.dead and g.successful()
    finally:
        g.kill()
    assert seen == ["hello"]
    with pytest.raises(RuntimeError):
        stream.push_text("x")


def test_get_timeout_and_context_manager() -> None:
    with basic.SentenceTokenizer().stream() as stream, pytest.raises(TimeoutError):
        stream.get(timeout=0.01)
    assert stream.get(timeout=0.01) is None  # closed by the with block


def test_abstract_bases() -> None:
    assert isinstance(basic.SentenceTokenizer(), tokenize.SentenceTokenizer)
    assert isinstance(basic.WordTokenizer(), tokenize.WordTokenizer)
    assert isinstance(basic.SentenceTokenizer().stream(), tokenize.SentenceStream)
    assert isinstance(basic.WordTokenizer().stream(), tokenize.WordStream)
    with pytest.raises(TypeError):
        tokenize.SentenceTokenizer()  # type: ignore[abstract]
