"""livekit-agents' tokenizer helpers: sentence offsets and retain_format, split_character,
paragraphs, hyphenation, replace_words (batch and streamed), and sentence ends of other
scripts; streamed output equals batch output under any chunking."""

from __future__ import annotations

import random

import gevent
import pytest

from syncagents import tokenize
from syncagents.tokenize import TokenData, basic

# livekit-agents' reference text (tests/test_tokenizer.py) and its expected output
LK_TEXT = (
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
LK_EXPECTED_RETAIN_FORMAT = [
    "Hi! LiveKit is a platform for live audio and video applications and services.",
    " \n\nR.T.C stands for Real-Time Communication... again R.T.C.",
    " Mr. Theo is testing the sentence tokenizer.",
    " \nThis is a test. Another test.",
    " A short sentence.\nA longer sentence that is longer than the previous sentence.",
    " f(x) = x * 2.54 + 42.",
    " Hey!\n Hi! Hello! \n\nThis is a sentence.",
    " 这是一个中文句子。これは日本語の文章です。",
    "你好！LiveKit是一个直播音频和视频应用程序和服务的平台。",
    "\nThis is a sentence contains   consecutive spaces.",
]
LK_WORDS_PUNCT_TEXT = (
    'This is <phoneme alphabet="cmu-arpabet" ph="AE K CH UW AH L IY">actually</phoneme> '
    "tricky to handle.这是一个中文句子。 これは日本語の文章です。"
)
LK_WORDS_PUNCT_EXPECTED = [
    "This", "is", "<phoneme", 'alphabet="cmu-arpabet"', 'ph="AE', "K", "CH", "UW", "AH", "L",
    'IY">actually</phoneme>', "tricky", "to", "handle.", "这", "是", "一", "个", "中", "文",
    "句", "子", "。", "こ", "れ", "は", "日", "本", "語", "の", "文", "章", "で", "す", "。",
]
LK_HYPHENATED = {
    "Segment": ["Seg", "ment"],
    "expected": ["ex", "pect", "ed"],
    "communication": ["com", "mu", "ni", "ca", "tion"],
    "window": ["win", "dow"],
    "welcome": ["wel", "come"],
    "bedroom": ["bed", "room"],
}
LK_REPLACE_TEXT = (
    "This is a test. Hello world, I'm creating this agents..     framework. Once again "
    "framework.  A.B.C"
)
LK_REPLACE_EXPECTED = (
    "This is a test. Hello universe, I'm creating this assistants..     library. twice again "
    "library.  A.B.C.D"
)
LK_REPLACEMENTS = {
    "world": "universe",
    "framework": "library",
    "a.b.c": "A.B.C.D",
    "once": "twice",
    "agents": "assistants",
}
LK_PARAGRAPHS = [
    ("Single paragraph.", [("Single paragraph.", 0, 17)]),
    ("Paragraph 1.\n\nParagraph 2.", [("Paragraph 1.", 0, 12), ("Paragraph 2.", 14, 26)]),
    ("Para 1.\n\nPara 2.\n\nPara 3.",
     [("Para 1.", 0, 7), ("Para 2.", 9, 16), ("Para 3.", 18, 25)]),
    ("\n\nParagraph with leading newlines.", [("Paragraph with leading newlines.", 2, 34)]),
    ("Paragraph with trailing newlines.\n\n", [("Paragraph with trailing newlines.", 0, 33)]),
    ("\n\n  Paragraph with leading and trailing spaces.  \n\n",
     [("Paragraph with leading and trailing spaces.", 4, 47)]),
    ("Para 1.\n\n\n\nPara 2.", [("Para 1.", 0, 7), ("Para 2.", 11, 18)]),
    ("Para 1.\n \n \nPara 2.", [("Para 1.", 0, 7), ("Para 2.", 12, 19)]),
    ("", []),
    ("\n\n\n", []),
    ("Line 1\nLine 2\nLine 3", [("Line 1\nLine 2\nLine 3", 0, 20)]),
]

# sentences of other scripts, each ended by its own mark
SCRIPTS_TEXT = (
    "नमस्ते। आप कैसे हैं? मैं ठीक हूँ॥ "  # Hindi: danda, double danda
    "مرحبا؟ كيف حالك؛ أنا بخير۔ "  # Arabic question mark and semicolon, Urdu full stop
    "ሰላም። እንዴት ነህ፧ "  # Amharic
    "Բարեւ։ Ինչպե՞ս ես։ "  # Armenian: the question mark sits inside the word
    "မင်္ဂလာပါ။နေကောင်းလား။"  # Burmese: no space after the mark
    "你好；世界。"
)
SCRIPTS_EXPECTED = [
    "नमस्ते।", "आप कैसे हैं?", "मैं ठीक हूँ॥", "مرحبا؟", "كيف حالك؛", "أنا بخير۔", "ሰላም።",
    "እንዴት ነህ፧", "Բարեւ։", "Ինչպե՞ս ես։", "မင်္ဂလာပါ။", "နေကောင်းလား။", "你好；", "世界。",
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


FUZZ_PIECES = [
    "Dr.", "3.14", "...", "?!", '"', "etc.", "\n", "\n\n", "。", "Hello", "The", "it.", "A.",
    "Hi!", "।", "नमस्ते", "؟", "مرحبا", "။", "中文", "句子", "ok", "world,", "(x)", "  ", "你",
]


def fuzz_text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 40)):
        parts.append(rng.choice(FUZZ_PIECES))
        parts.append(rng.choice(["", " ", " ", "\n", "  "]))
    return "".join(parts)


# ---- sentences ---------------------------------------------------------------------------


def test_retain_format_matches_livekit() -> None:
    tok = basic.SentenceTokenizer(min_sentence_len=20, retain_format=True)
    got = tok.tokenize(LK_TEXT)
    assert got == LK_EXPECTED_RETAIN_FORMAT
    assert "".join(got) == LK_TEXT  # original slices: nothing added, nothing lost
    chunks, i, sizes = [], 0, [1, 2, 4]
    while i < len(LK_TEXT):
        n = sizes[len(chunks) % 3]
        chunks.append(LK_TEXT[i : i + n])
        i += n
    assert [t.token for t in run_stream(tok.stream(), chunks)] == LK_EXPECTED_RETAIN_FORMAT


def test_retain_format_ends_sentences_at_line_breaks() -> None:
    tok = basic.SentenceTokenizer(min_sentence_len=5, retain_format=True)
    text = "Shopping list\n- two apples\n- bread\n\nThat is all.  "
    assert tok.tokenize(text) == [
        "Shopping list\n", "- two apples\n", "- bread\n", "\nThat is all."
    ]
    plain = basic.SentenceTokenizer(min_sentence_len=5)
    assert plain.tokenize(text) == ["Shopping list - two apples - bread  That is all."]


def test_sentence_offsets() -> None:
    # livekit's regressions: the last span ends at len(text)
    assert basic.split_sentences("Hello world.") == [("Hello world.", 0, 12)]
    text = "This is the first sentence. Second one here."
    spans = basic.split_sentences(text)
    assert spans[-1][2] == len(text)
    assert text[spans[-1][1] : spans[-1][2]].strip() == spans[-1][0]
    for source in (LK_TEXT.replace("\n", " "), SCRIPTS_TEXT, "  lead. and trail.  "):
        spans = basic.split_sentences(source, min_sentence_len=20)
        assert [s for s, _, _ in spans] == basic.SentenceTokenizer(20).tokenize(source)
        assert spans[0][1] == 0 and spans[-1][2] == len(source)
        for (sentence, start, end), nxt in zip(spans, [*spans[1:], None]):
            # merged sentences are joined by one space, the slice keeps its whitespace
            assert "".join(source[start:end].split()) == "".join(sentence.split())
            if nxt is not None:
                assert nxt[1] == end  # contiguous
    retained = basic.split_sentences(LK_TEXT, retain_format=True)
    assert all(LK_TEXT[start:end] == s for s, start, end in retained)
    assert basic.split_sentences("") == [] and basic.split_sentences("   ") == []


def test_sentence_ends_of_other_scripts() -> None:
    tok = basic.SentenceTokenizer(min_sentence_len=1)
    assert tok.tokenize(SCRIPTS_TEXT) == SCRIPTS_EXPECTED
    # a reply in Hindi or Arabic is spoken sentence by sentence, not held until the flush
    for first, rest in [("नमस्ते। ", "आप कैसे हैं?"), ("مرحبا؟ ", "كيف حالك"),
                        ("你好；", "世界")]:
        stream = tok.stream()
        stream.push_text(first + rest)
        with gevent.Timeout(5):
            assert stream.get(timeout=5) == TokenData(token=first.strip(),
                                                      segment_id=stream._segment_id)
        stream.close()


@pytest.mark.parametrize("retain_format", [False, True])
@pytest.mark.parametrize("min_len", [0, 20])
def test_sentence_stream_equals_batch_for_random_chunking(
    retain_format: bool, min_len: int
) -> None:
    rng = random.Random(1234 + min_len + retain_format)
    tok = basic.SentenceTokenizer(min_sentence_len=min_len, retain_format=retain_format)
    for text in [LK_TEXT, SCRIPTS_TEXT, *(fuzz_text(rng) for _ in range(150))]:
        expected = tok.tokenize(text)
        for _ in range(3):
            got = [t.token for t in run_stream(tok.stream(), chunked(text, rng))]
            assert got == expected, (text, got)


# ---- words ---------------------------------------------------------------------------------


def test_split_character_matches_livekit() -> None:
    tok = basic.WordTokenizer(ignore_punctuation=False, split_character=True)
    assert tok.tokenize(LK_WORDS_PUNCT_TEXT) == LK_WORDS_PUNCT_EXPECTED
    plain = basic.WordTokenizer(split_character=True)
    assert plain.tokenize("我爱你。 Thai: สวัสดี ok") == [
        "我", "爱", "你", "Thai", "ส", "ว", "ั", "ส", "ด", "ี", "ok"
    ]


def test_split_words_offsets_and_retain_format() -> None:
    text = "Hello, world!  (Done)"
    assert basic.split_words(text) == [("Hello", 0, 6), ("world", 7, 13), ("Done", 15, 21)]
    assert basic.split_words(text, ignore_punctuation=False)[0] == ("Hello,", 0, 6)
    assert basic.split_words("中文", split_character=True) == [("中", 0, 1), ("文", 1, 2)]
    tok = basic.WordTokenizer(ignore_punctuation=False, retain_format=True)
    words = tok.tokenize("  Hi there,\n you. ")
    assert words == ["  Hi", " there,", "\n you."]
    assert tok.format_words(words) == "  Hi there,\n you."
    assert basic.WordTokenizer().format_words(["a", "b"]) == "a b"


@pytest.mark.parametrize(
    "options",
    [
        {"ignore_punctuation": False, "split_character": True},
        {"ignore_punctuation": True, "split_character": True},
        {"ignore_punctuation": False, "retain_format": True},
        {"ignore_punctuation": True, "split_character": True, "retain_format": True},
    ],
)
def test_word_stream_equals_batch_for_random_chunking(options: dict[str, bool]) -> None:
    rng = random.Random(99)
    tok = basic.WordTokenizer(**options)
    for text in [LK_WORDS_PUNCT_TEXT, SCRIPTS_TEXT, *(fuzz_text(rng) for _ in range(100))]:
        expected = tok.tokenize(text)
        got = [t.token for t in run_stream(tok.stream(), chunked(text, rng, 5))]
        assert got == expected, (text, got)


def test_cjk_characters_are_released_as_they_arrive() -> None:
    stream = basic.WordTokenizer(split_character=True).stream()
    stream.push_text("你")
    assert stream.get(timeout=5) is not None  # no whitespace needed after a character word
    stream.push_text("hello")
    with pytest.raises(TimeoutError):
        stream.get(timeout=0.01)  # "hello" may still grow
    stream.close()


# ---- paragraphs and hyphenation ------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), LK_PARAGRAPHS)
def test_split_paragraphs(text: str, expected: list[tuple[str, int, int]]) -> None:
    assert basic.split_paragraphs(text) == expected
    assert basic.tokenize_paragraphs(text) == [p for p, _, _ in expected]


def test_hyphenate_word() -> None:
    for word, pieces in LK_HYPHENATED.items():
        assert basic.hyphenate_word(word) == pieces
    assert basic.hyphenate_word("cat") == ["cat"]  # short words stay whole
    assert basic.hyphenate_word("associate") == ["as", "so", "ciate"]  # an exception
    assert basic.hyphenate_word("present") == ["present"]
    assert basic.hyphenate_word("HYPHENATION") == ["HY", "PHEN", "ATION"]  # case kept
    assert "".join(basic.hyphenate_word("supercalifragilisticexpialidocious")) == (
        "supercalifragilisticexpialidocious"
    )


# ---- replace_words -------------------------------------------------------------------------


def test_replace_words_matches_livekit() -> None:
    replaced = tokenize.utils.replace_words(text=LK_REPLACE_TEXT, replacements=LK_REPLACEMENTS)
    assert replaced == LK_REPLACE_EXPECTED
    chunks, i, sizes = [], 0, [1, 2, 4]
    while i < len(LK_REPLACE_TEXT):
        n = sizes[len(chunks) % 3]
        chunks.append(LK_REPLACE_TEXT[i : i + n])
        i += n
    pieces = list(tokenize.utils.replace_words(text=iter(chunks), replacements=LK_REPLACEMENTS))
    assert "".join(pieces) == LK_REPLACE_EXPECTED and "" not in pieces


def test_replace_words_across_any_chunk_boundary() -> None:
    rng = random.Random(7)
    table = {"LiveKit": "Live Kit", "sql": "sequel", "e.g.": "for example", "gpu": "G P U"}
    text = "(LiveKit) runs SQL, e.g. on a GPU; livekit's SQLite is not sql! LIVEKIT.\n"
    expected = "(Live Kit) runs sequel, for example on a G P U; livekit's SQLite is not " \
        "sequel! Live Kit.\n"
    assert tokenize.utils.replace_words(text=text, replacements=table) == expected
    for _ in range(200):
        replacer = tokenize.utils.WordReplacer(table)
        out = "".join(replacer.push(c) for c in chunked(text, rng, 6)) + replacer.flush()
        assert out == expected
    # a word is only released once complete, then at once
    replacer = tokenize.utils.WordReplacer(table)
    assert replacer.push("Live") == ""
    assert replacer.push("Kit rocks") == "Live Kit"
    assert replacer.flush() == " rocks"
    assert replacer.flush() == ""


def test_replace_words_rejects_bad_tables() -> None:
    with pytest.raises(ValueError, match="single words"):
        tokenize.utils.replace_words(text="x", replacements={"New York": "NYC"})
    with pytest.raises(TypeError, match="str to str"):
        tokenize.utils.replace_words(text="x", replacements={"a": 1})  # type: ignore[dict-item]
