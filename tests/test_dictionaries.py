"""A log's zstd dictionaries live in meta: kept when announced, current for new records, loadable anew."""

from __future__ import annotations

import zstandard

from rgstore.codec import CODEC_RAW, CODEC_ZSTD_DICT, known_dictionary, train_dictionary
from rgstore.dictionaries import Dictionaries
from rgstore.environment import Txn
from rgstore.events import CodecDictionaryAdded
from rgstore.store import Store


def _dictionary() -> bytes:
    samples = [f'{{"alias":"g{i}","digest":"{i * 7919:032d}","namespace":"refgenie"}}'.encode() for i in range(2000)]
    return train_dictionary(samples, size=4096)


def test_a_kept_dictionary_becomes_current_and_loads_again_from_meta(store: Store) -> None:
    data = _dictionary()
    dicts = Dictionaries(store.environment.db("meta"))

    def keep(txn: Txn) -> int:
        assert dicts.current(txn) == 0
        dicts.keep(txn, CodecDictionaryAdded(dict_id=0, data=data, trained_on=2000))
        return dicts.current(txn)

    dict_id = store.environment.write(keep)
    assert dict_id == zstandard.ZstdCompressionDict(data).dict_id()
    assert known_dictionary(dict_id)
    with store.read() as txn:
        assert dicts.current(txn) == dict_id
        assert dicts.load(txn) == 1


def test_note_looks_up_each_dictionary_once_and_ignores_raw_records(store: Store) -> None:
    dicts = Dictionaries(store.environment.db("meta"))
    with store.read() as txn:
        dicts.note(txn, bytes([CODEC_RAW]) + b"\x00" * 36)
        assert dicts.seen == set()
        dicts.note(txn, bytes([CODEC_ZSTD_DICT]) + b"\x00\x00\x30\x39" + b"\x00" * 32)
        assert dicts.seen == {b"\x00\x00\x30\x39"}
