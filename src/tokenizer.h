// tokenizer.h: the Tokenizer (token bytes, merge scores, a sorted index for
// string -> id lookup) and the one encoder/decoder it serves, for two
// vocabularies with the same id layout (0 <unk>, 1 <s>, 2 </s>, 3..258 the
// bytes 0x00..0xFF, merged tokens after):
//   * llama2.c's tok512.bin, read by tokenizer_load_llama2c;
//   * the project's own byte-level BPE, learned by tokenizer_train_bpe and kept
//     inside every E4SRec checkpoint and base (tokenizer_write_to / read_from).
// Encoding is llama2.c's: optional BOS, a dummy-prefix space, each UTF-8
// character as its token or else its byte tokens, then the adjacent pair whose
// concatenation is in the vocab with the highest score is merged, repeatedly.
// With score = -(merge index) this replays the BPE merges in training order.
//
// Serialized tokenizer (the section that checkpoints embed; the tests also keep one
// alone in a binfile of KIND_TOKENIZER whose header dims repeat its first five ints):
//   int32 vocab_size V, max_token_length, bos_id, eos_id, flags;
//   float32 scores[V]; int32 lengths[V]; the V tokens' bytes concatenated.
#pragma once
#include "binfile.h"

#define TOK_BOS 1
#define TOK_EOS 2
#define TOK_BYTE_BASE 3                      // byte b is token TOK_BYTE_BASE + b; ids below are control tokens
#define TOK_BASE_VOCAB (TOK_BYTE_BASE + 256)  // merged tokens start here
#define TOK_MAX_VOCAB (1 << 20)               // keeps -(merge index) exact in float32
#define TOK_MAX_TOKEN_LENGTH 4096
#define TOK_FLAG_DUMMY_PREFIX 1
#define TOK_DIMS 5                            // vocab_size, max_token_length, bos_id, eos_id, flags

// one token's bytes and id; the sorted array of these is the lookup index
typedef struct {
    const char* str;
    int len;
    int id;
} TokenIndex;

typedef struct {
    int vocab_size;                  // V
    int max_token_length;            // longest token, in bytes
    int bos_id, eos_id;
    int add_dummy_prefix;            // encode prepends " " to non-empty text (sentencepiece's convention)
    char** vocab;                    // (V) token bytes, each also NUL-terminated for printing
    int* lengths;                    // (V) token lengths in bytes (a byte token may be "\0")
    float* scores;                   // (V) merge priority: the higher, the earlier the merge
    TokenIndex* sorted;              // (V - TOK_BYTE_BASE) every non-control token, sorted by bytes
    int n_sorted;
    unsigned char byte_pieces[256];  // what byte token TOK_BYTE_BASE + b decodes to: b
} Tokenizer;

// ----------------------------------------------------------------------------
// construction, lookup, validation

static void tokenizer_alloc(Tokenizer* t, int capacity) {
    memset(t, 0, sizeof(*t));
    t->vocab = (char**)callocCheck((size_t)capacity, sizeof(char*));
    t->lengths = (int*)callocCheck((size_t)capacity, sizeof(int));
    t->scores = (float*)callocCheck((size_t)capacity, sizeof(float));
}

static void tokenizer_set(Tokenizer* t, int id, const char* bytes, int len, float score) {
    t->vocab[id] = (char*)mallocCheck((size_t)len + 1);
    memcpy(t->vocab[id], bytes, (size_t)len);
    t->vocab[id][len] = 0;
    t->lengths[id] = len;
    t->scores[id] = score;
}

static void tokenizer_free(Tokenizer* t) {
    if (t->vocab) {
        for (int i = 0; i < t->vocab_size; i++) free(t->vocab[i]);
    }
    free(t->vocab);
    free(t->lengths);
    free(t->scores);
    free(t->sorted);
    memset(t, 0, sizeof(*t));
}

// byte order first, then the shorter string: the order bsearch needs
static int tok_compare(const void* a, const void* b) {
    const TokenIndex* x = (const TokenIndex*)a;
    const TokenIndex* y = (const TokenIndex*)b;
    int c = memcmp(x->str, y->str, (size_t)min_int(x->len, y->len));
    return c != 0 ? c : x->len - y->len;
}

// the id of the token spelled by str[0..len), or -1; control tokens are not
// found, so no text ever encodes to <s> or </s>
static int tokenizer_lookup(const Tokenizer* t, const char* str, int len) {
    TokenIndex key = {str, len, -1};
    const TokenIndex* hit = (const TokenIndex*)bsearch(&key, t->sorted, (size_t)t->n_sorted, sizeof(TokenIndex), tok_compare);
    return hit ? hit->id : -1;
}

// checks what encode and decode rely on (byte tokens where expected, no
// duplicate spellings), then builds the lookup index; source names the input
static void tokenizer_index(Tokenizer* t, const char* source) {
    for (int b = 0; b < 256; b++) {
        int id = TOK_BYTE_BASE + b;
        char spelled[8];
        snprintf(spelled, sizeof(spelled), "<0x%02X>", b);
        int is_raw = t->lengths[id] == 1 && (unsigned char)t->vocab[id][0] == b;
        int is_spelled = t->lengths[id] == 6 && memcmp(t->vocab[id], spelled, 6) == 0;
        if (!is_raw && !is_spelled) {
            die("'%s': token %d should be byte 0x%02X (the byte itself or %s), it is '%s': not a byte-fallback vocabulary",
                source, id, b, spelled, t->vocab[id]);
        }
        t->byte_pieces[b] = (unsigned char)b;
    }
    t->n_sorted = t->vocab_size - TOK_BYTE_BASE;
    t->sorted = (TokenIndex*)mallocCheck((size_t)t->n_sorted * sizeof(TokenIndex));
    for (int i = 0; i < t->n_sorted; i++) {
        int id = TOK_BYTE_BASE + i;
        t->sorted[i] = (TokenIndex){t->vocab[id], t->lengths[id], id};
    }
    qsort(t->sorted, (size_t)t->n_sorted, sizeof(TokenIndex), tok_compare);
    for (int i = 1; i < t->n_sorted; i++) {
        if (tok_compare(&t->sorted[i - 1], &t->sorted[i]) == 0) {
            die("'%s': tokens %d and %d are both '%s': a lookup would be ambiguous",
                source, t->sorted[i - 1].id, t->sorted[i].id, t->sorted[i].str);
        }
    }
}

// ----------------------------------------------------------------------------
// llama2.c's tok512.bin: int32 max_token_length, then per token float32 score,
// int32 length, bytes. The file does not store V: it is the number of records.

static void tokenizer_load_llama2c(Tokenizer* t, const char* path) {
    const char* outer = input_begin(path);  // named by any refusal below
    size_t size = 0;
    char* file = read_file(path, &size);
    int32_t max_len = 0;
    if (size < sizeof(int32_t)) die("'%s' is %zu bytes, too short for a llama2.c tokenizer", path, size);
    memcpy(&max_len, file, sizeof(int32_t));
    if (max_len < 1 || max_len > TOK_MAX_TOKEN_LENGTH) {
        die("'%s': max_token_length %d is outside 1..%d: not a llama2.c tokenizer file", path, max_len, TOK_MAX_TOKEN_LENGTH);
    }
    // every record takes at least 9 bytes, which bounds V before it is known
    size_t capacity = (size - sizeof(int32_t)) / 9;
    if (capacity > TOK_MAX_VOCAB) capacity = TOK_MAX_VOCAB;
    tokenizer_alloc(t, (int)capacity);
    size_t pos = sizeof(int32_t);
    while (pos < size) {
        int id = t->vocab_size;
        float score;
        int32_t len;
        if (size - pos < 8) {
            die("'%s' is truncated: token %d's score and length need 8 bytes at offset %zu, %zu are left", path, id, pos, size - pos);
        }
        memcpy(&score, file + pos, 4);
        memcpy(&len, file + pos + 4, 4);
        pos += 8;
        if (len < 1 || len > max_len) {
            die("'%s': token %d has length %d, outside 1..max_token_length %d: the file is corrupt or not a llama2.c tokenizer",
                path, id, len, max_len);
        }
        if (!isfinite(score)) die("'%s': token %d has score %g: the file is corrupt", path, id, score);
        if (size - pos < (size_t)len) {
            die("'%s' is truncated: token %d needs %d bytes at offset %zu, %zu are left", path, id, len, pos, size - pos);
        }
        // records take 9 bytes or more, so only the TOK_MAX_VOCAB clamp can be exceeded
        if (id >= (int)capacity) die("'%s' holds more than %d tokens: not a llama2.c tokenizer file", path, TOK_MAX_VOCAB);
        tokenizer_set(t, id, file + pos, len, score);
        pos += (size_t)len;
        t->vocab_size++;
    }
    free(file);
    if (t->vocab_size < TOK_BASE_VOCAB) {
        die("'%s' holds %d tokens, fewer than the %d of the <unk>, <s>, </s>, 256 bytes layout: truncated or not a llama2.c tokenizer",
            path, t->vocab_size, TOK_BASE_VOCAB);
    }
    t->max_token_length = max_len;
    t->bos_id = TOK_BOS;
    t->eos_id = TOK_EOS;
    t->add_dummy_prefix = 1;
    tokenizer_index(t, path);
    input_end(outer);
}

// ----------------------------------------------------------------------------
// the project's own format: serialized into a Buffer, read back from a Cursor

static void tokenizer_dims(const Tokenizer* t, int32_t dims[TOK_DIMS]) {
    dims[0] = t->vocab_size;
    dims[1] = t->max_token_length;
    dims[2] = t->bos_id;
    dims[3] = t->eos_id;
    dims[4] = t->add_dummy_prefix ? TOK_FLAG_DUMMY_PREFIX : 0;
}

static void tokenizer_write_to(Buffer* b, const Tokenizer* t) {
    int32_t dims[TOK_DIMS];
    tokenizer_dims(t, dims);
    buffer_put(b, dims, sizeof(dims));
    buffer_put(b, t->scores, (size_t)t->vocab_size * sizeof(float));
    buffer_put(b, t->lengths, (size_t)t->vocab_size * sizeof(int32_t));
    for (int i = 0; i < t->vocab_size; i++) buffer_put(b, t->vocab[i], (size_t)t->lengths[i]);
}

static void tokenizer_read_from(Cursor* c, Tokenizer* t) {
    int32_t dims[TOK_DIMS];
    cursor_take(c, dims, sizeof(dims), "the tokenizer's dimensions");
    int V = dims[0], max_len = dims[1], bos = dims[2], eos = dims[3], flags = dims[4];
    if (V < TOK_BASE_VOCAB || V > TOK_MAX_VOCAB) {
        die("'%s': tokenizer vocab_size %d is outside %d..%d: corrupt, or not a tokenizer section", c->path, V, TOK_BASE_VOCAB, TOK_MAX_VOCAB);
    }
    if (max_len < 1 || max_len > TOK_MAX_TOKEN_LENGTH) {
        die("'%s': tokenizer max_token_length %d is outside 1..%d: corrupt", c->path, max_len, TOK_MAX_TOKEN_LENGTH);
    }
    if (bos < 0 || bos >= TOK_BYTE_BASE || eos < 0 || eos >= TOK_BYTE_BASE || (flags & ~TOK_FLAG_DUMMY_PREFIX) != 0) {
        die("'%s': tokenizer bos %d / eos %d must be control ids below %d and flags %d only bit %d: corrupt",
            c->path, bos, eos, TOK_BYTE_BASE, flags, TOK_FLAG_DUMMY_PREFIX);
    }
    tokenizer_alloc(t, V);
    float* scores = (float*)mallocCheck((size_t)V * sizeof(float));
    int32_t* lengths = (int32_t*)mallocCheck((size_t)V * sizeof(int32_t));
    cursor_take(c, scores, (size_t)V * sizeof(float), "the tokenizer's scores");
    cursor_take(c, lengths, (size_t)V * sizeof(int32_t), "the tokenizer's token lengths");
    char* bytes = (char*)mallocCheck((size_t)max_len);
    for (int id = 0; id < V; id++) {
        if (lengths[id] < 1 || lengths[id] > max_len) {
            die("'%s': token %d has length %d, outside 1..max_token_length %d: corrupt", c->path, id, lengths[id], max_len);
        }
        if (!isfinite(scores[id])) die("'%s': token %d has score %g: corrupt", c->path, id, scores[id]);
        cursor_take(c, bytes, (size_t)lengths[id], "the tokenizer's token bytes");
        tokenizer_set(t, id, bytes, lengths[id], scores[id]);
        t->vocab_size++;
    }
    free(bytes);
    free(lengths);
    free(scores);
    t->max_token_length = max_len;
    t->bos_id = bos;
    t->eos_id = eos;
    t->add_dummy_prefix = (flags & TOK_FLAG_DUMMY_PREFIX) != 0;
    tokenizer_index(t, c->path);
}

// dst = a copy of src (through the serialized form, so it is checked like a file)
static void tokenizer_copy(Tokenizer* dst, const Tokenizer* src) {
    Buffer b = {NULL, 0, 0};
    tokenizer_write_to(&b, src);
    Cursor c = {b.data, b.size, 0, "a tokenizer copy"};
    tokenizer_read_from(&c, dst);
    free(b.data);
}

// 1 when a and b are the same vocabulary (tokens, scores, control ids, dummy prefix)
static int tokenizer_same(const Tokenizer* a, const Tokenizer* b) {
    Buffer x = {NULL, 0, 0}, y = {NULL, 0, 0};
    tokenizer_write_to(&x, a);
    tokenizer_write_to(&y, b);
    int same = x.size == y.size && memcmp(x.data, y.data, x.size) == 0;
    free(x.data);
    free(y.data);
    return same;
}

// ----------------------------------------------------------------------------
// encoding and decoding

// writes the bytes of token left followed by token right into out, returns their length
static int tok_concat(const Tokenizer* t, int left, int right, char* out) {
    memcpy(out, t->vocab[left], (size_t)t->lengths[left]);
    memcpy(out + t->lengths[left], t->vocab[right], (size_t)t->lengths[right]);
    return t->lengths[left] + t->lengths[right];
}

// appends one UTF-8 character: its own token if the vocab has it, else its bytes
static int tok_push_char(const Tokenizer* t, const char* s, int len, int* ids, int n) {
    int id = tokenizer_lookup(t, s, len);
    if (id >= 0) {
        ids[n++] = id;
    } else {
        for (int i = 0; i < len; i++) ids[n++] = TOK_BYTE_BASE + (unsigned char)s[i];
    }
    return n;
}

// the fewest ids a text of len bytes can encode to: a token covers at most its
// own length of text (a byte token "<0xXX>" covers one byte), and no token is
// longer than max_token_length. Lets a caller refuse a text without encoding it.
static size_t tokenizer_min_ids(const Tokenizer* t, size_t len, int add_bos, int add_eos) {
    size_t covered = len + (t->add_dummy_prefix && len > 0 ? 1 : 0);
    size_t longest = (size_t)t->max_token_length;
    return (covered + longest - 1) / longest + (add_bos ? 1 : 0) + (add_eos ? 1 : 0);
}

// A candidate merge for the encoder: the symbol at left and the one after it,
// with the ids they had when the pair was pushed, and the token they make.
typedef struct {
    float score;  // scores[id]
    int left;     // the left symbol's index in the encoder's array, which merges never reorder
    int left_id, right_id;
    int id;
} TokMerge;

// llama2.c's merge order: the highest score, then the leftmost pair (its scan
// left to right replaces the best only on a strictly higher score)
static int tok_merge_before(const TokMerge* a, const TokMerge* b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void tok_heap_push(TokMerge* heap, size_t* n, TokMerge m) {
    size_t i = (*n)++;
    while (i > 0 && tok_merge_before(&m, &heap[(i - 1) / 2])) {
        heap[i] = heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap[i] = m;
}

static TokMerge tok_heap_pop(TokMerge* heap, size_t* n) {
    TokMerge top = heap[0], last = heap[--(*n)];
    size_t i = 0;
    for (size_t child = 1; child < *n; child = 2 * i + 1) {
        if (child + 1 < *n && tok_merge_before(&heap[child + 1], &heap[child])) child++;
        if (!tok_merge_before(&heap[child], &last)) break;
        heap[i] = heap[child];
        i = child;
    }
    heap[i] = last;
    return top;
}

// pushes the pair of symbols left and right if their concatenation is a token
static void tok_push_pair(const Tokenizer* t, const int* ids, int left, int right, char* pair, TokMerge* heap, size_t* n) {
    if (t->lengths[ids[left]] + t->lengths[ids[right]] > t->max_token_length) return;  // cannot be a token
    int id = tokenizer_lookup(t, pair, tok_concat(t, ids[left], ids[right], pair));
    if (id >= 0) tok_heap_push(heap, n, (TokMerge){t->scores[id], left, ids[left], ids[right], id});
}

// writes the ids of text into out_ids and returns their count. Merges in
// llama2.c's order, but where llama2.c rescans every pair after each merge
// (quadratic), the symbols here form a linked list and the candidate pairs a
// heap (n log n): a merge pushes the two pairs it creates, and a popped pair
// whose symbols have changed since it was pushed is skipped.
static int tokenizer_encode(const Tokenizer* t, const char* text, int add_bos, int add_eos, int* out_ids, int max_ids) {
    size_t len = strlen(text);
    if (len > (size_t)INT32_MAX - 3) die("tokenizer_encode: text of %zu bytes is too long to encode at once", len);
    // before merging: at most one id per byte, plus BOS, the dummy prefix and EOS
    int* ids = (int*)mallocCheck((len + 3) * sizeof(int));
    int n = 0;
    if (add_bos) ids[n++] = t->bos_id;
    int first = n;  // merges never involve BOS
    if (t->add_dummy_prefix && len > 0) n = tok_push_char(t, " ", 1, ids, n);
    for (size_t i = 0; i < len;) {
        int char_len = 1;  // a lead byte and up to three continuation bytes
        while (char_len < 4 && i + char_len < len && ((unsigned char)text[i + char_len] & 0xC0) == 0x80) char_len++;
        n = tok_push_char(t, text + i, char_len, ids, n);
        i += (size_t)char_len;
    }
    // the symbols' neighbours (-1: none); a symbol merged away gets id -1
    int* prev = (int*)mallocCheck((size_t)n * sizeof(int));
    int* next = (int*)mallocCheck((size_t)n * sizeof(int));
    // the first pairs, then at most two per merge, and there are fewer merges than symbols
    TokMerge* heap = (TokMerge*)mallocCheck(3 * (size_t)n * sizeof(TokMerge));
    size_t heap_n = 0;
    char* pair = (char*)mallocCheck((size_t)t->max_token_length);
    for (int i = first; i < n; i++) {
        prev[i] = i > first ? i - 1 : -1;
        next[i] = i + 1 < n ? i + 1 : -1;
        if (i + 1 < n) tok_push_pair(t, ids, i, i + 1, pair, heap, &heap_n);
    }
    while (heap_n > 0) {
        TokMerge m = tok_heap_pop(heap, &heap_n);
        // a symbol's id changes only when it absorbs its right neighbour, and then
        // it is longer, so it never gets an id back; and only its left neighbour
        // absorbs a symbol. So while the left id is unchanged, its right neighbour
        // is the one pushed, and equal ids mean the pair is still as it was.
        int right = next[m.left];
        if (ids[m.left] != m.left_id || ids[right] != m.right_id) continue;
        ids[m.left] = m.id;
        ids[right] = -1;
        next[m.left] = next[right];
        if (next[right] >= 0) prev[next[right]] = m.left;
        if (prev[m.left] >= 0) tok_push_pair(t, ids, prev[m.left], m.left, pair, heap, &heap_n);
        if (next[m.left] >= 0) tok_push_pair(t, ids, m.left, next[m.left], pair, heap, &heap_n);
    }
    int kept = first;
    for (int i = first; i < n; i++) {
        if (ids[i] >= 0) ids[kept++] = ids[i];
    }
    n = kept;
    free(pair);
    free(heap);
    free(next);
    free(prev);
    if (add_eos) ids[n++] = t->eos_id;
    if (n > max_ids) die("tokenizer_encode: the text needs %d ids, the output holds %d", n, max_ids);
    memcpy(out_ids, ids, (size_t)n * sizeof(int));
    free(ids);
    return n;
}

// the bytes token id prints as when it follows prev_id (-1: nothing), by
// llama2.c's rules: a byte token prints its byte, and the piece right after BOS
// drops its leading space (the dummy prefix). Control tokens print nothing.
// *len gets the piece's length, since a byte piece may be "\0".
static const char* tokenizer_piece(const Tokenizer* t, int prev_id, int id, int* len) {
    if (id < 0 || id >= t->vocab_size) die("tokenizer_piece: id %d is outside the vocabulary 0..%d", id, t->vocab_size - 1);
    if (id < TOK_BYTE_BASE) {
        *len = 0;
        return "";
    }
    const char* piece = id < TOK_BASE_VOCAB ? (const char*)&t->byte_pieces[id - TOK_BYTE_BASE] : t->vocab[id];
    int n = id < TOK_BASE_VOCAB ? 1 : t->lengths[id];
    if (prev_id == t->bos_id && piece[0] == ' ') {
        piece++;
        n--;
    }
    *len = n;
    return piece;
}

// writes the text of ids[0..n) NUL-terminated into out (cap bytes), returns its length
static size_t tokenizer_decode(const Tokenizer* t, const int* ids, int n, char* out, size_t cap) {
    if (cap == 0) die("tokenizer_decode: no room for the terminating NUL");
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        int piece_len;
        const char* piece = tokenizer_piece(t, i > 0 ? ids[i - 1] : -1, ids[i], &piece_len);
        if (len + (size_t)piece_len >= cap) die("tokenizer_decode: the text needs more than the %zu bytes given", cap);
        memcpy(out + len, piece, (size_t)piece_len);
        len += (size_t)piece_len;
    }
    out[len] = 0;
    return len;
}

// ----------------------------------------------------------------------------
// training the project's byte-level BPE

// A merged token holds whole UTF-8 characters, or the leading bytes of a single
// character: never a partial character joined to a neighbour. So a character is
// completed before it merges with anything, which is what encode assumes when
// it looks whole characters up first. Invalid UTF-8 stays as bytes.
static int tok_utf8_mergeable(const unsigned char* s, int len) {
    for (int i = 0; i < len;) {
        int need = s[i] < 0x80 ? 1 : (s[i] & 0xE0) == 0xC0 ? 2 : (s[i] & 0xF0) == 0xE0 ? 3 : (s[i] & 0xF8) == 0xF0 ? 4 : 0;
        if (need == 0) return 0;  // a stray continuation byte or an invalid lead byte
        int have = 1;
        while (have < need && i + have < len && (s[i + have] & 0xC0) == 0x80) have++;
        if (have < need) return i == 0 && have == len;
        i += need;
    }
    return 1;
}

typedef struct {
    uint64_t pair;  // left id << 32 | right id
    int64_t count;  // occurrences weighted by word frequency
} TokPairCount;

#define TOK_NO_PAIR UINT64_MAX

// open addressing; cap is a power of two larger than the number of pairs
static TokPairCount* tok_pair_slot(TokPairCount* table, size_t cap, uint64_t pair) {
    size_t i = (size_t)((pair * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
    while (table[i].pair != pair && table[i].pair != TOK_NO_PAIR) i = (i + 1) & (cap - 1);
    return &table[i];
}

// the base vocabulary every BPE starts from, in room for `capacity` tokens: the
// control tokens <unk> <s> </s>, then the 256 bytes, every score 0
static void tokenizer_base_vocab(Tokenizer* t, int capacity) {
    tokenizer_alloc(t, capacity);
    const char* control[TOK_BYTE_BASE] = {"<unk>", "<s>", "</s>"};
    for (int id = 0; id < TOK_BYTE_BASE; id++) tokenizer_set(t, id, control[id], (int)strlen(control[id]), 0.0f);
    for (int b = 0; b < 256; b++) {
        char byte = (char)b;
        tokenizer_set(t, TOK_BYTE_BASE + b, &byte, 1, 0.0f);
    }
    t->vocab_size = TOK_BASE_VOCAB;
    t->max_token_length = (int)strlen("<unk>");
}

// Learns merges on text until the vocab holds vocab_size tokens (or no pair is
// left). The text is cut into words before every space, the first word getting
// the dummy-prefix space as encode does, so tokens never span a word boundary.
// Each step merges the most frequent adjacent pair (ties: the lowest left id,
// then right id) everywhere, left to right; the new token scores -(merge index).
static void tokenizer_train_bpe(Tokenizer* t, const char* text, size_t len, int vocab_size) {
    if (vocab_size < TOK_BASE_VOCAB || vocab_size > TOK_MAX_VOCAB) {
        die("tokenizer_train_bpe: vocab_size %d is outside %d..%d (259 = <unk> <s> </s> + 256 bytes)", vocab_size, TOK_BASE_VOCAB, TOK_MAX_VOCAB);
    }
    if (len > (size_t)INT32_MAX - 1) die("tokenizer_train_bpe: a %zu-byte corpus is too large", len);
    tokenizer_base_vocab(t, vocab_size);
    t->bos_id = TOK_BOS;
    t->eos_id = TOK_EOS;
    t->add_dummy_prefix = 1;

    // distinct words with their counts (a TokenIndex is a byte span here)
    char* prefixed = (char*)mallocCheck(len + 1);
    prefixed[0] = ' ';
    memcpy(prefixed + 1, text, len);
    int plen = len > 0 ? (int)len + 1 : 0;
    TokenIndex* spans = (TokenIndex*)mallocCheck((size_t)plen * sizeof(TokenIndex));
    int n_spans = 0;
    for (int i = 0; i < plen; i++) {
        if (i == 0 || prefixed[i] == ' ') spans[n_spans++] = (TokenIndex){prefixed + i, 0, 0};
        spans[n_spans - 1].len++;
    }
    qsort(spans, (size_t)n_spans, sizeof(TokenIndex), tok_compare);
    int* pieces = (int*)mallocCheck((size_t)plen * sizeof(int));  // each distinct word's current tokens
    int* word_start = (int*)mallocCheck((size_t)n_spans * sizeof(int));
    int* word_len = (int*)mallocCheck((size_t)n_spans * sizeof(int));
    int64_t* word_count = (int64_t*)mallocCheck((size_t)n_spans * sizeof(int64_t));
    int n_words = 0, n_pieces = 0, longest_word = 1;
    for (int s = 0; s < n_spans; s++) {
        if (s > 0 && tok_compare(&spans[s - 1], &spans[s]) == 0) {
            word_count[n_words - 1]++;
            continue;
        }
        word_start[n_words] = n_pieces;
        word_len[n_words] = spans[s].len;
        word_count[n_words] = 1;
        n_words++;
        for (int i = 0; i < spans[s].len; i++) pieces[n_pieces++] = TOK_BYTE_BASE + (unsigned char)spans[s].str[i];
        longest_word = max_int(longest_word, spans[s].len);
    }

    size_t cap = 16;
    while (cap < 2 * (size_t)n_pieces) cap *= 2;
    TokPairCount* table = (TokPairCount*)mallocCheck(cap * sizeof(TokPairCount));
    char* merged = (char*)mallocCheck((size_t)longest_word);
    while (t->vocab_size < vocab_size) {
        for (size_t i = 0; i < cap; i++) table[i] = (TokPairCount){TOK_NO_PAIR, 0};
        for (int w = 0; w < n_words; w++) {
            const int* p = pieces + word_start[w];
            for (int i = 0; i + 1 < word_len[w]; i++) {
                TokPairCount* slot = tok_pair_slot(table, cap, (uint64_t)p[i] << 32 | (uint32_t)p[i + 1]);
                slot->pair = (uint64_t)p[i] << 32 | (uint32_t)p[i + 1];
                slot->count += word_count[w];
            }
        }
        TokPairCount best = {TOK_NO_PAIR, 0};
        for (size_t i = 0; i < cap; i++) {
            TokPairCount c = table[i];
            if (c.pair == TOK_NO_PAIR || c.count < best.count || (c.count == best.count && c.pair > best.pair)) continue;
            int n = tok_concat(t, (int)(c.pair >> 32), (int)(c.pair & 0xffffffffu), merged);
            if (tok_utf8_mergeable((const unsigned char*)merged, n)) best = c;
        }
        if (best.pair == TOK_NO_PAIR) break;
        int left = (int)(best.pair >> 32), right = (int)(best.pair & 0xffffffffu);
        int merged_len = tok_concat(t, left, right, merged);
        // a different pair may already have spelled this string: reuse that token
        // (encode reaches it the same way), so no spelling is ever duplicated
        int id = -1;
        for (int v = TOK_BASE_VOCAB; v < t->vocab_size && id < 0; v++) {
            if (t->lengths[v] == merged_len && memcmp(t->vocab[v], merged, (size_t)merged_len) == 0) id = v;
        }
        if (id < 0) {
            id = t->vocab_size++;
            tokenizer_set(t, id, merged, merged_len, -(float)(id - TOK_BASE_VOCAB));
            t->max_token_length = max_int(t->max_token_length, merged_len);
        }
        for (int w = 0; w < n_words; w++) {
            int* p = pieces + word_start[w];
            int out = 0;
            for (int i = 0; i < word_len[w]; i++) {
                if (i + 1 < word_len[w] && p[i] == left && p[i + 1] == right) {
                    p[out++] = id;
                    i++;
                } else {
                    p[out++] = p[i];
                }
            }
            word_len[w] = out;
        }
    }
    free(merged);
    free(table);
    free(word_count);
    free(word_len);
    free(word_start);
    free(pieces);
    free(spans);
    free(prefixed);
    tokenizer_index(t, "tokenizer_train_bpe");
}
