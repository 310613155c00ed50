// data.h: the data of method.md 2. Defines SeqData (sequence files, loaded
// with strict validation, written atomically), the leave-one-out split and
// left-padded histories, the training batches of both model families (E4SRec
// next-item samples, SASRec shifted sequences), the synthetic generator
// (`synth`) and raw-ratings preprocessing (`prep`). data/README.md documents
// every format and choice made here.
#pragma once
#include "utils.h"
#include <ctype.h>
#include <limits.h>

// ----------------------------------------------------------------------------
// sequence data: one user per line, "user_id item item ...", items 1..n_items
// in time order; 0 is the pad id, so embedding tables have I = n_items + 1 rows

// leave-one-out needs at least one training item, the valid target and the test target
#define SEQ_MIN_LEN 3

typedef struct {
    int n_users;
    int n_items;    // item ids are 1..n_items
    int n_events;
    int* offsets;   // (n_users + 1) user u's items are items[offsets[u] .. offsets[u + 1])
    int* items;     // (n_events) 1-based item ids, each user's in time order
    int* user_ids;  // (n_users) the user id written in the file (a label only)
} SeqData;

static int seq_len(const SeqData* d, int u) { return d->offsets[u + 1] - d->offsets[u]; }
static const int* seq_items(const SeqData* d, int u) { return d->items + d->offsets[u]; }

static int is_space_char(char c) { return c == ' ' || c == '\t'; }

// a line ends at "\n", "\r\n" or a lone "\r" (old Mac files): a lone "\r" must not join two lines
static int is_line_break(char c) { return c == '\n' || c == '\r'; }

// where the line break at p ends (p < end, is_line_break(*p))
static const char* skip_line_break(const char* p, const char* end) {
    return p + (*p == '\r' && p + 1 < end && p[1] == '\n' ? 2 : 1);
}

// lines in text[0..len) by the rule above, plus one for a last line without a break
static size_t count_lines(const char* text, size_t len) {
    size_t n = 1;
    for (const char* p = text; p < text + len;) {
        if (is_line_break(*p)) { n++; p = skip_line_break(p, text + len); }
        else p++;
    }
    return n;
}

// parses the token starting at p (it ends at whitespace, a newline or `end`) as an
// id >= 1; *token_end gets where it stopped. line/col only serve the messages.
static int parse_id(const char* p, const char* end, const char** token_end, const char* path, int line, int col,
                    const char* what) {
    const char* q = p;
    while (q < end && !is_line_break(*q) && !is_space_char(*q)) q++;
    *token_end = q;
    int len = (int)(q - p);
    const char* digits = p + (*p == '-');
    int ok = digits < q;
    long long value = 0;
    for (const char* c = digits; c < q && ok; c++) {
        ok = isdigit((unsigned char)*c);
        if (value <= INT_MAX) value = value * 10 + (*c - '0');  // stops growing once it overflows
    }
    char shown[ECHO_CAP];
    if (!ok) die("%s:%d:%d: expected an integer %s, got '%s'", path, line, col, what, echo_input(p, (size_t)len, shown));
    if (value > INT_MAX) {
        die("%s:%d:%d: id overflow: %s '%s' does not fit in a 32-bit int", path, line, col, what, echo_input(p, (size_t)len, shown));
    }
    if (*p == '-' || value == 0) {
        die("%s:%d:%d: %s must be >= 1, got '%s' (ids start at 1; item 0 is the pad id)", path, line, col, what,
            echo_input(p, (size_t)len, shown));
    }
    return (int)value;
}

// expect_n_items = 0 takes the largest item id; otherwise the file must fit it
// (a model or checkpoint built for that many items)
static void seqdata_load(SeqData* d, const char* path, int expect_n_items) {
    const char* outer = input_begin(path);  // named by any refusal below
    size_t len = 0;
    char* text = read_file(path, &len);
    const char* end = text + len;
    size_t max_lines = count_lines(text, len);
    d->offsets = (int*)mallocCheck((max_lines + 1) * sizeof(int));
    d->user_ids = (int*)mallocCheck(max_lines * sizeof(int));
    d->items = (int*)mallocCheck((len / 2 + 1) * sizeof(int));  // a token takes a character and a separator
    d->n_users = d->n_events = d->n_items = 0;
    d->offsets[0] = 0;
    const char* p = text;
    for (int line = 1; p < end; line++) {
        const char* line_start = p;
        int user = 0, user_col = 0;
        for (;;) {
            while (p < end && is_space_char(*p)) p++;
            if (p == end || is_line_break(*p)) break;
            int col = (int)(p - line_start) + 1;
            if (user_col == 0) {
                user = parse_id(p, end, &p, path, line, col, "user id");
                user_col = col;
                continue;
            }
            int item = parse_id(p, end, &p, path, line, col, "item id");
            if (item > MAX_ITEM_ID) {
                die("%s:%d:%d: item id %d is above the limit of %d: item tables have a row per id up to the largest\n"
                    "  hint: renumber the items 1..n (./slmrec prep does)", path, line, col, item, MAX_ITEM_ID);
            }
            if (expect_n_items > 0 && item > expect_n_items) {
                die("%s:%d:%d: n_items mismatch: item %d is above the expected n_items = %d\n"
                    "  hint: the model or checkpoint was built for another data file", path, line, col, item, expect_n_items);
            }
            d->items[d->n_events++] = item;
            d->n_items = max_int(d->n_items, item);
        }
        if (user_col > 0) {
            int n = d->n_events - d->offsets[d->n_users];
            if (n == 0) die("%s:%d:%d: user %d has no items (expected 'user_id item item ...')", path, line, user_col, user);
            if (n < SEQ_MIN_LEN) {
                die("%s:%d:%d: user %d has %d item(s); leave-one-out needs at least %d "
                    "(train >= 1, valid target, test target)", path, line, user_col, user, n, SEQ_MIN_LEN);
            }
            d->user_ids[d->n_users++] = user;
            d->offsets[d->n_users] = d->n_events;
        }
        if (p < end) p = skip_line_break(p, end);
    }
    free(text);
    if (d->n_users == 0) die("%s:1:1: empty file: expected lines 'user_id item item ...'", path);
    // sparse ids cost a table row each: say so when most rows would be unused
    unsigned char* used = (unsigned char*)callocCheck((size_t)d->n_items + 1, 1);
    int distinct = 0;
    for (int i = 0; i < d->n_events; i++) { distinct += !used[d->items[i]]; used[d->items[i]] = 1; }
    free(used);
    if (d->n_items > 2 * distinct && d->n_items > 1000) {
        fprintf(stderr, "warning: '%s': the largest item id is %d but only %d distinct items occur: the item tables\n"
                "  get %d rows, most unused (./slmrec prep renumbers items 1..n)\n", path, d->n_items, distinct, d->n_items + 1);
    }
    if (expect_n_items > 0) d->n_items = expect_n_items;
    input_end(outer);
}

static void seqdata_free(SeqData* d) {
    free(d->offsets);
    free(d->items);
    free(d->user_ids);
    memset(d, 0, sizeof(*d));
}

// the data-set table the papers print (./slmrec stats)
#define STATS_RARE 5  // an item with fewer events than this is rare (the k of the usual 5-core)
typedef struct {
    int users, items, events;
    double mean_len, median_len;  // events per user
    int min_len, max_len;
    double density;               // events / (users x items)
    double rare_items;            // share of the items with fewer than STATS_RARE events
} DataStats;

static int compare_ints(const void* a, const void* b) {
    int x = *(const int*)a, y = *(const int*)b;
    return (x > y) - (x < y);
}

static DataStats seqdata_stats(const SeqData* d) {
    DataStats s = {.users = d->n_users, .items = d->n_items, .events = d->n_events};
    int* lens = (int*)mallocCheck((size_t)d->n_users * sizeof(int));         // (n_users)
    int* count = (int*)callocCheck((size_t)d->n_items + 1, sizeof(int));    // (n_items + 1) events per item
    for (int u = 0; u < d->n_users; u++) lens[u] = seq_len(d, u);
    for (int i = 0; i < d->n_events; i++) count[d->items[i]]++;
    qsort(lens, d->n_users, sizeof(int), compare_ints);
    int n = d->n_users;
    s.min_len = lens[0];
    s.max_len = lens[n - 1];
    s.mean_len = (double)d->n_events / n;
    s.median_len = n % 2 ? lens[n / 2] : 0.5 * (lens[n / 2 - 1] + lens[n / 2]);
    s.density = (double)d->n_events / ((double)d->n_users * d->n_items);
    int rare = 0;
    for (int i = 1; i <= d->n_items; i++) rare += count[i] < STATS_RARE;
    s.rare_items = (double)rare / d->n_items;
    free(lens);
    free(count);
    return s;
}

// the sequence-file format, atomically (temp file + rename)
static void seqdata_write(const SeqData* d, const char* path) {
    OutFile out;
    outfile_open(&out, path);
    for (int u = 0; u < d->n_users; u++) {
        fprintf(out.f, "%d", d->user_ids[u]);
        for (int i = 0; i < seq_len(d, u); i++) fprintf(out.f, " %d", seq_items(d, u)[i]);
        fputc('\n', out.f);
    }
    outfile_commit(&out);
}

// ----------------------------------------------------------------------------
// leave-one-out split: test target = last item, valid target = second last,
// training uses the rest (the "train prefix" is the valid history)

typedef enum { SPLIT_VALID, SPLIT_TEST } Split;


// number of items before the split's target; the target is the item right after them
static int history_len(const SeqData* d, int u, Split split) { return seq_len(d, u) - (split == SPLIT_VALID ? 2 : 1); }
static int split_target(const SeqData* d, int u, Split split) { return seq_items(d, u)[history_len(d, u, split)]; }
static int train_len(const SeqData* d, int u) { return history_len(d, u, SPLIT_VALID); }

// the last max_len items of seq[0..len), left-padded with 0 (common.py pad_left)
static void history_left_padded(int* out /*(max_len)*/, const int* seq, int len, int max_len) {
    int n = min_int(max_int(len, 0), max_len);
    int pad = max_len - n;
    memset(out, 0, pad * sizeof(int));
    memcpy(out + pad, seq + len - n, n * sizeof(int));
}

// histories and targets of users u0 .. u0+n-1 for the valid or test split
static void eval_batch(const SeqData* d, Split split, int u0, int n, int max_len,
                       int* histories /*(n, max_len)*/, int* targets /*(n)*/) {
    for (int i = 0; i < n; i++) {
        int u = u0 + i;
        history_left_padded(histories + (size_t)i * max_len, seq_items(d, u), history_len(d, u, split), max_len);
        targets[i] = split_target(d, u, split);
    }
}

// ----------------------------------------------------------------------------
// training batches, both left-padded like the evaluation histories

// users whose train prefix has >= 2 items (an input and a target), as the peers
// train; returns how many were written to users
static int trainable_users(const SeqData* d, int* users /*(n_users)*/) {
    int n = 0;
    for (int u = 0; u < d->n_users; u++) {
        if (train_len(d, u) >= 2) users[n++] = u;
    }
    return n;
}

// E4SRec (peer_e4srec.py sample): for each user a cut t uniform in
// [1, train_len - 1], or with last_cut (--samples last-cut) the cut t = train_len - 1;
// history = the last max_len items before t, target = item t
static void e4srec_sample(const SeqData* d, const int* users, int n, int max_len, int last_cut, Rng* rng,
                          int* histories /*(n, max_len)*/, int* targets /*(n)*/) {
    for (int i = 0; i < n; i++) {
        const int* s = seq_items(d, users[i]);
        int len = train_len(d, users[i]);
        if (len < 2) die("e4srec_sample: user %d has a train prefix of %d items, needs >= 2", users[i], len);
        int t = last_cut ? len - 1 : 1 + rng_int(rng, len - 1);
        history_left_padded(histories + (size_t)i * max_len, s, t, max_len);
        targets[i] = s[t];
    }
}

// SASRec (peer_sasrec.py batches): the last max_len + 1 items of the train
// prefix as inputs x = s[:-1] and next-item targets y = s[1:], both left-padded
static void sasrec_batch(const SeqData* d, const int* users, int n, int max_len,
                         int* x /*(n, max_len)*/, int* y /*(n, max_len)*/) {
    for (int i = 0; i < n; i++) {
        const int* s = seq_items(d, users[i]);
        int len = train_len(d, users[i]);
        history_left_padded(x + (size_t)i * max_len, s, len - 1, max_len);
        history_left_padded(y + (size_t)i * max_len, s + 1, len - 1, max_len);
    }
}

// ----------------------------------------------------------------------------
// synth: the built-in synthetic data set. Items have Zipf popularity, fall into
// taste clusters, and each has a few likely successors; each user has one taste
// cluster. Each next item follows the previous item's successors, else the
// user's taste, else global popularity, so that sequence models beat popularity.

#define SYNTH_USERS 2000
#define SYNTH_ITEMS 400
#define SYNTH_MEAN_LEN 12
#define SYNTH_SEED 1337
#define SYNTH_MIN_LEN 5
#define SYNTH_CLUSTERS 8          // at most; fewer when there are under 10 items a cluster
#define SYNTH_SUCCESSORS 3        // likely next items of every item, picked uniformly
#define SYNTH_ZIPF 0.8            // popularity of the item ranked r is 1 / (r + 1)^SYNTH_ZIPF
#define SYNTH_P_SUCCESSOR 0.6f    // next item = a successor of the previous one
#define SYNTH_P_TASTE 0.3f        // else from the user's cluster; the remaining 0.1 from all items
#define SYNTH_P_OWN_CLUSTER 0.8f  // a successor is drawn from its item's own cluster, else from all items

// draws items in proportion to popularity: cdf holds running sums of the weights
typedef struct {
    const int* items;   // (n)
    const double* cdf;  // (n)
    int n;
} SynthSampler;

static int synth_draw(const SynthSampler* s, Rng* rng) {
    double x = rng_f32(rng) * s->cdf[s->n - 1];
    int lo = 0, hi = s->n - 1;  // first index with cdf > x
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (s->cdf[mid] > x) hi = mid; else lo = mid + 1;
    }
    return s->items[lo];
}

// a sampler over items[0..n) with cdf filled from the items' weights
static SynthSampler synth_sampler(const int* items, double* cdf, int n, const double* weight /*(n_items + 1)*/) {
    double total = 0.0;
    for (int i = 0; i < n; i++) cdf[i] = total += weight[items[i]];
    return (SynthSampler){items, cdf, n};
}

static void synth_generate(SeqData* d, int n_users, int n_items, int mean_len, uint64_t seed) {
    check_range("synth", "--users", n_users, 1, 1 << 26);
    check_range("synth", "--items", n_items, 2, MAX_ITEM_ID);
    check_range("synth", "--mean-len", mean_len, SYNTH_MIN_LEN, MAX_REC_HISTORY);
    Rng rng;
    rng_seed(&rng, seed);
    int n_clusters = max_int(1, min_int(SYNTH_CLUSTERS, n_items / 10));
    // popularity rank r -> item by_rank[r]; cluster c holds ranks c, c + K, c + 2K, ...
    // so every cluster mixes popular and rare items
    int* by_rank = (int*)mallocCheck(n_items * sizeof(int));        // (n_items)
    int* by_cluster = (int*)mallocCheck(n_items * sizeof(int));     // (n_items) grouped by cluster
    double* weight = (double*)mallocCheck((n_items + 1) * sizeof(double));
    double* cdf_global = (double*)mallocCheck(n_items * sizeof(double));
    double* cdf_cluster = (double*)mallocCheck(n_items * sizeof(double));
    SynthSampler* clusters = (SynthSampler*)mallocCheck(n_clusters * sizeof(SynthSampler));
    int* successors = (int*)mallocCheck((size_t)(n_items + 1) * SYNTH_SUCCESSORS * sizeof(int));  // (n_items + 1, S)
    int* cluster_of = (int*)mallocCheck((n_items + 1) * sizeof(int));
    for (int r = 0; r < n_items; r++) by_rank[r] = r + 1;
    rng_shuffle(&rng, by_rank, n_items);
    for (int r = 0; r < n_items; r++) {
        weight[by_rank[r]] = pow(r + 1.0, -SYNTH_ZIPF);
        cluster_of[by_rank[r]] = r % n_clusters;
    }
    SynthSampler global = synth_sampler(by_rank, cdf_global, n_items, weight);
    int filled = 0;
    for (int c = 0; c < n_clusters; c++) {
        int start = filled;
        for (int r = c; r < n_items; r += n_clusters) by_cluster[filled++] = by_rank[r];
        clusters[c] = synth_sampler(by_cluster + start, cdf_cluster + start, filled - start, weight);
    }
    for (int i = 1; i <= n_items; i++) {
        for (int j = 0; j < SYNTH_SUCCESSORS; j++) {
            const SynthSampler* from = rng_f32(&rng) < SYNTH_P_OWN_CLUSTER ? &clusters[cluster_of[i]] : &global;
            int next = synth_draw(from, &rng);
            successors[i * SYNTH_SUCCESSORS + j] = next != i ? next : i % n_items + 1;  // never itself
        }
    }
    // lengths: SYNTH_MIN_LEN + a rounded exponential, mean about mean_len
    d->n_users = n_users;
    d->n_items = n_items;
    d->offsets = (int*)mallocCheck((n_users + 1) * sizeof(int));
    d->user_ids = (int*)mallocCheck(n_users * sizeof(int));
    d->offsets[0] = 0;
    for (int u = 0; u < n_users; u++) {
        int extra = (int)(-log(1.0 - rng_f32(&rng)) * (mean_len - SYNTH_MIN_LEN) + 0.5);  // at most ~17 x mean_len
        if (d->offsets[u] > INT_MAX - SYNTH_MIN_LEN - extra) {
            die("synth: --users %d x --mean-len %d is more than the %d events a data set holds", n_users, mean_len, INT_MAX);
        }
        d->offsets[u + 1] = d->offsets[u] + SYNTH_MIN_LEN + extra;
        d->user_ids[u] = u + 1;
    }
    d->n_events = d->offsets[n_users];
    d->items = (int*)mallocCheck((size_t)d->n_events * sizeof(int));
    for (int u = 0; u < n_users; u++) {
        int taste = rng_int(&rng, n_clusters);
        int prev = 0;  // the first item comes from the user's taste or global popularity
        for (int t = d->offsets[u]; t < d->offsets[u + 1]; t++) {
            float x = rng_f32(&rng);
            int next;
            if (prev > 0 && x < SYNTH_P_SUCCESSOR) next = successors[prev * SYNTH_SUCCESSORS + rng_int(&rng, SYNTH_SUCCESSORS)];
            else if (x < SYNTH_P_SUCCESSOR + SYNTH_P_TASTE) next = synth_draw(&clusters[taste], &rng);
            else next = synth_draw(&global, &rng);
            if (next == prev) next = successors[next * SYNTH_SUCCESSORS];  // no immediate repeats
            d->items[t] = prev = next;
        }
    }
    free(by_rank); free(by_cluster); free(weight); free(cdf_global); free(cdf_cluster);
    free(clusters); free(successors); free(cluster_of);
}

// ----------------------------------------------------------------------------
// prep: raw ratings "user,item,rating,timestamp" (or MovieLens "::") -> a
// sequence file. Keep rating > 3, 5-core, chronological, dense ids; see
// data/README.md for the numbering order.


typedef struct {
    int user;            // index in order of first appearance in the file
    int item;            // index in order of first kept appearance
    long long timestamp;
    int order;           // position in the file: breaks timestamp ties
} PrepRating;

// string -> dense index in order of first appearance; keys point into the file buffer
typedef struct {
    int* slots;          // (cap) index + 1, 0 = empty
    const char** keys;   // (max_keys)
    int n, cap;
} PrepIndex;

static void prep_index_init(PrepIndex* m, int max_keys) {
    m->cap = 16;
    while (m->cap < 2 * max_keys) m->cap *= 2;  // load factor <= 1/2
    m->slots = (int*)callocCheck(m->cap, sizeof(int));
    m->keys = (const char**)mallocCheck(max_keys * sizeof(const char*));
    m->n = 0;
}

static void prep_index_free(PrepIndex* m) { free(m->slots); free(m->keys); }

static int prep_index_get(PrepIndex* m, const char* key) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a, 64-bit
    for (const char* c = key; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->slots[i] == 0) {
            m->keys[m->n] = key;
            m->slots[i] = ++m->n;
            return m->n - 1;
        }
        if (strcmp(m->keys[m->slots[i] - 1], key) == 0) return m->slots[i] - 1;
    }
}

// splits line in place at sep into at most max_fields fields; returns how many there were
static int prep_split(char* line, const char* sep, char** fields, int max_fields) {
    size_t sep_len = strlen(sep);
    int n = 0;
    for (char* p = line;; p += sep_len) {
        if (n < max_fields) fields[n] = p;
        n++;
        p = strstr(p, sep);
        if (p == NULL) return n;
        *p = 0;
    }
}

// whole-field parses: no trailing characters, no overflow
// a decimal number: strtod alone would also take "0x5", "inf" or "nan"
static int prep_parse_number(const char* s, double* value) {
    for (const char* c = s; *c; c++) {
        if (!isdigit((unsigned char)*c) && !strchr("+-.eE", *c)) return 0;
    }
    char* end;
    errno = 0;
    *value = strtod(s, &end);
    return end != s && *end == 0 && errno == 0 && isfinite(*value);
}

static int prep_parse_integer(const char* s, long long* value) {
    char* end;
    errno = 0;
    *value = strtoll(s, &end, 10);
    return end != s && *end == 0 && errno == 0;
}

static int prep_compare(const void* pa, const void* pb) {
    const PrepRating* a = (const PrepRating*)pa;
    const PrepRating* b = (const PrepRating*)pb;
    if (a->user != b->user) return a->user < b->user ? -1 : 1;
    if (a->timestamp != b->timestamp) return a->timestamp < b->timestamp ? -1 : 1;
    return (a->order > b->order) - (a->order < b->order);
}

// by user, then item, then time and file order: repeated (user, item) ratings side by side, earliest first
static int prep_compare_pairs(const void* pa, const void* pb) {
    const PrepRating* a = (const PrepRating*)pa;
    const PrepRating* b = (const PrepRating*)pb;
    if (a->user != b->user) return a->user < b->user ? -1 : 1;
    if (a->item != b->item) return a->item < b->item ? -1 : 1;
    return prep_compare(pa, pb);  // the same user and item: earliest first
}

// keeps only the earliest of each user's ratings of one item; returns the new count
static int prep_dedupe(PrepRating* events, int n) {
    qsort(events, n, sizeof(PrepRating), prep_compare_pairs);
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (kept && events[kept - 1].user == events[i].user && events[kept - 1].item == events[i].item) continue;
        events[kept++] = events[i];
    }
    return kept;
}

// drops events of users or items with < k events until none is dropped; returns the new count
static int prep_core(PrepRating* events, int n, int n_users, int n_items, int k) {
    int* user_count = (int*)mallocCheck(n_users * sizeof(int));
    int* item_count = (int*)mallocCheck(n_items * sizeof(int));
    for (int before = -1; n != before;) {
        before = n;
        memset(user_count, 0, n_users * sizeof(int));
        memset(item_count, 0, n_items * sizeof(int));
        for (int i = 0; i < n; i++) { user_count[events[i].user]++; item_count[events[i].item]++; }
        n = 0;
        for (int i = 0; i < before; i++) {
            if (user_count[events[i].user] >= k && item_count[events[i].item] >= k) events[n++] = events[i];
        }
    }
    free(user_count);
    free(item_count);
    return n;
}

// the columns of a ratings file (data/README.md): which field holds the user, item,
// rating and timestamp, by name (--columns) or by a release's preset (--format)
enum { PREP_USER, PREP_ITEM, PREP_RATING, PREP_TIME, PREP_MAX_FIELDS = 8 };
static const char* PREP_COLUMN_NAMES[4] = {"user", "item", "rating", "timestamp"};  // --columns' names
typedef struct {
    int field_of[4];     // the field index of user, item, rating, timestamp
    int n_fields;        // fields a line has (a column named '-' is read and ignored)
    const char* sep;     // "," or "::"; NULL: "::" if the first line has one, else ","
    int header;          // the first non-blank line names the columns: skipped
    int named;           // --columns, or a header of known names: nothing is guessed
    int from_header;     // the format's header names the columns (amazon2023, recbole): it must
    int decimal_time;    // the header types the timestamp as a float (RecBole): read to the millisecond
    const char* format;  // --format, or NULL
    // the filters, in this order (data/README.md)
    double min_rating;   // --min-rating: kept ratings are strictly above it (3: 4 and 5 stars)
    int dedupe;          // --dedupe first: of repeated (user, item) ratings only the earliest is kept
    int kcore;           // --kcore: users and items need at least this many kept events
    char describe[96];   // the layout, for the summary line: "item,user,rating,timestamp (amazon2018)"
} PrepOptions;

typedef struct { const char* name; const char* columns; const char* sep; } PrepFormat;  // columns NULL: by the header
static const PrepFormat PREP_FORMATS[] = {
    {"amazon2014", "user,item,rating,timestamp", ","},   // ratings_<Category>.csv, no header
    {"amazon2018", "item,user,rating,timestamp", ","},   // <Category>.csv "ratings only", no header
    {"amazon2023", NULL, ","},                           // <Category>.csv: user_id,parent_asin,rating,timestamp (ms)
    {"movielens", "user,item,rating,timestamp", "::"},   // ratings.dat
    {"recbole", NULL, "\t"},                            // <name>.inter: user_id:token item_id:token rating:float ...
};
#define PREP_N_FORMATS ((int)(sizeof(PREP_FORMATS) / sizeof(PREP_FORMATS[0])))

// format: a PREP_FORMATS name or NULL; columns: "item,user,-,rating,timestamp" or NULL
// (neither: user,item,rating,timestamp, checked against the Amazon 2018 order)
static PrepOptions prep_options(const char* format, const char* columns, int header) {
    PrepOptions l = {.field_of = {-1, -1, -1, -1}, .header = header, .named = columns != NULL, .min_rating = 3.0, .kcore = 5,
                     .format = format};
    const char* list = columns ? columns : "user,item,rating,timestamp";
    if (format) {
        int k = 0;
        while (k < PREP_N_FORMATS && strcmp(PREP_FORMATS[k].name, format) != 0) k++;
        if (k == PREP_N_FORMATS) die("prep: --format must be amazon2014, amazon2018, amazon2023, movielens or recbole, got '%s'", format);
        if (columns) die("prep: give --format or --columns, not both (--format %s names the columns)", format);
        l.from_header = PREP_FORMATS[k].columns == NULL;
        l.header |= l.from_header;
        if (!l.from_header) list = PREP_FORMATS[k].columns;
        l.sep = PREP_FORMATS[k].sep;
    }
    char copy[96];
    if (strlen(list) >= sizeof(copy)) die("prep: --columns '%.40s...' is too long", list);
    snprintf(copy, sizeof(copy), "%s", list);
    char* fields[PREP_MAX_FIELDS];
    l.n_fields = prep_split(copy, ",", fields, PREP_MAX_FIELDS);
    if (l.n_fields > PREP_MAX_FIELDS) die("prep: --columns names %d fields, at most %d are read", l.n_fields, PREP_MAX_FIELDS);
    for (int f = 0; f < l.n_fields; f++) {
        int c = 0;
        while (c < 4 && strcmp(fields[f], PREP_COLUMN_NAMES[c]) != 0) c++;
        if (c == 4 && strcmp(fields[f], "-") == 0) continue;
        if (c == 4 || l.field_of[c] >= 0) {
            die("prep: --columns '%s': field %d is '%s'; each of user, item, rating, timestamp must be named once, '-' skips a field",
                list, f + 1, fields[f]);
        }
        l.field_of[c] = f;
    }
    for (int c = 0; c < 4; c++) if (l.field_of[c] < 0) die("prep: --columns '%s' does not name the %s column", list, PREP_COLUMN_NAMES[c]);
    snprintf(l.describe, sizeof(l.describe), "%s%s%s%s", list, format ? " (" : "", format ? format : "", format ? ")" : "");
    return l;
}

// a header line: when it names the four columns (any order, extra fields, RecBole's
// ":type" suffixes), they are read by those names; else, unless the format requires
// it, the default order stands
static void prep_read_header(PrepOptions* l, char* row, const char* sep, const char* path, int line) {
    static const char* synonyms[4][8] = {
        {"user", "user_id", "userid", "reviewerid", NULL},
        {"item", "item_id", "itemid", "parent_asin", "asin", "movie_id", "movieid", NULL},
        {"rating", "score", NULL},
        {"timestamp", "time", "unixreviewtime", NULL}};
    char* fields[PREP_MAX_FIELDS];
    int n = prep_split(row, sep, fields, PREP_MAX_FIELDS), field_of[4] = {-1, -1, -1, -1}, decimal_time = 0;
    for (int f = 0; f < n && f < PREP_MAX_FIELDS; f++) {
        char* type = strchr(fields[f], ':');
        if (type) *type++ = 0;
        for (int c = 0; c < 4; c++) {
            for (int k = 0; synonyms[c][k]; k++) {
                if (strcasecmp(fields[f], synonyms[c][k]) != 0 || field_of[c] >= 0) continue;
                field_of[c] = f;
                if (c == PREP_TIME && type && strcmp(type, "float") == 0) decimal_time = 1;
            }
        }
    }
    int found = n <= PREP_MAX_FIELDS && field_of[0] >= 0 && field_of[1] >= 0 && field_of[2] >= 0 && field_of[3] >= 0;
    if (!found) {
        if (l->from_header) {
            die("%s:%d: the header should name the user, item, rating and timestamp columns (user_id, parent_asin or\n"
                "  item_id, rating, timestamp; RecBole's with a :type), in at most %d fields", path, line, PREP_MAX_FIELDS);
        }
        return;
    }
    memcpy(l->field_of, field_of, sizeof(field_of));
    l->n_fields = n;
    l->named = 1;
    l->decimal_time = decimal_time;
    size_t used = 0;
    for (int f = 0; f < n; f++) {
        const char* what = "-";
        for (int c = 0; c < 4; c++) if (field_of[c] == f) what = PREP_COLUMN_NAMES[c];
        used += snprintf(l->describe + used, sizeof(l->describe) - used, "%s%s", f ? "," : "", what);
        if (used >= sizeof(l->describe)) break;
    }
    if (used < sizeof(l->describe)) {
        snprintf(l->describe + used, sizeof(l->describe) - used, " (%s%sby the header's names)", l->format ? l->format : "",
                 l->format ? ", " : "");
    }
}

// Amazon ids: a product (ASIN "B0..." or an ISBN-10) is 10 digits and capitals; a
// reviewer is 'A' and 11 to 20 more. Telling them apart catches swapped columns.
static int prep_all_caps_digits(const char* s) {
    for (; *s; s++) if (!isdigit((unsigned char)*s) && !isupper((unsigned char)*s)) return 0;
    return 1;
}
static int prep_looks_like_asin(const char* s) {
    return strlen(s) == 10 && prep_all_caps_digits(s) && (strncmp(s, "B0", 2) == 0 || isdigit((unsigned char)s[0]));
}
static int prep_looks_like_reviewer(const char* s) {
    size_t n = strlen(s);
    return n >= 12 && n <= 21 && s[0] == 'A' && prep_all_caps_digits(s);
}

// header: the first non-blank line names the columns and is skipped; without it a
// first line that is not a rating is refused like any other (it may be data gone wrong)
static void prep_ratings(const char* csv_path, const char* out_path, const PrepOptions* options) {
    PrepOptions read_as = *options;  // a header may name the columns
    const PrepOptions* layout = &read_as;
    int header = layout->header, seen_header = 0;
    int from_stdin = strcmp(csv_path, "-") == 0;  // --in -
    const char* name = from_stdin ? "standard input" : csv_path;
    const char* outer = input_begin(name);  // named by any refusal below
    size_t len = 0;
    char* text = from_stdin ? read_stream(stdin, &len, name) : read_file(csv_path, &len);
    const char* nul = memchr(text, 0, len);
    if (nul) die("%s: byte %zu is NUL: a ratings CSV is text", name, (size_t)(nul - text));
    int max_lines = (int)count_lines(text, len);
    const char* sep = layout->sep;  // without a format: decided by the first non-blank line
    PrepIndex users, items;
    prep_index_init(&users, max_lines);
    prep_index_init(&items, max_lines);
    PrepRating* events = (PrepRating*)mallocCheck(max_lines * sizeof(PrepRating));
    int n = 0, n_data_lines = 0;
    char* p = text;
    for (int line = 1; p < text + len; line++) {
        char* row_end = p;
        while (row_end < text + len && !is_line_break(*row_end)) row_end++;
        char* next = row_end < text + len ? (char*)skip_line_break(row_end, text + len) : text + len + 1;
        *row_end = 0;  // read_file NUL-terminates, so this is in bounds without a line break too
        char* row = p;
        p = next;
        if (strspn(row, " \t\r") == strlen(row)) continue;  // blank line
        if (sep == NULL) sep = strstr(row, "::") ? "::" : ",";
        if (header && !seen_header) {
            seen_header = 1;
            if (!options->named) prep_read_header(&read_as, row, sep, name, line);
            continue;
        }
        int first = n_data_lines == 0;  // the first rating line
        char* fields[PREP_MAX_FIELDS];
        int n_fields = prep_split(row, sep, fields, PREP_MAX_FIELDS);
        if (n_fields != layout->n_fields) {
            die("%s:%d: expected %d fields separated by '%s' (%s), got %d", name, line, layout->n_fields, sep,
                layout->describe, n_fields);
        }
        const char* user_id = fields[layout->field_of[PREP_USER]];
        const char* item_id = fields[layout->field_of[PREP_ITEM]];
        const char* rating_text = fields[layout->field_of[PREP_RATING]];
        const char* time_text = fields[layout->field_of[PREP_TIME]];
        double rating;
        long long timestamp = 0;
        char echo[ECHO_CAP], echo2[ECHO_CAP];
        if (!prep_parse_number(rating_text, &rating)) {
            die("%s:%d: rating '%s' is not a number%s", name, line, echo_input(rating_text, strlen(rating_text), echo),
                first && !header ? " (if this line names the columns, add --header)" : "");
        }
        double decimal;
        if (layout->decimal_time ? !prep_parse_number(time_text, &decimal) || fabs(decimal) > 9e15 : !prep_parse_integer(time_text, &timestamp)) {
            die("%s:%d: timestamp '%s' is not %s", name, line, echo_input(time_text, strlen(time_text), echo),
                layout->decimal_time ? "a number" : "an integer");
        }
        if (layout->decimal_time) timestamp = llround(decimal * 1000.0);  // seconds as a float: keep millisecond order
        if (user_id[0] == 0 || item_id[0] == 0) die("%s:%d: empty %s id", name, line, user_id[0] == 0 ? "user" : "item");
        if (first && !layout->named && prep_looks_like_asin(user_id) && prep_looks_like_reviewer(item_id)) {
            die("%s:%d: read as %s, the user column holds '%s', which looks like an Amazon product id (ASIN), and the\n"
                "  item column '%s', which looks like a reviewer id: the columns look swapped. Amazon 2014 files are\n"
                "  user,item,rating,timestamp (--format amazon2014), Amazon 2018 files item,user,rating,timestamp\n"
                "  (--format amazon2018); --columns names them for any file", name, line, layout->describe,
                echo_input(user_id, strlen(user_id), echo), echo_input(item_id, strlen(item_id), echo2));
        }
        n_data_lines++;
        int user = prep_index_get(&users, user_id);  // every line counts for the user numbering order
        if (rating <= layout->min_rating) continue;
        events[n] = (PrepRating){user, prep_index_get(&items, item_id), timestamp, n};
        n++;
    }
    int n_kept = n;
    if (layout->dedupe) n = prep_dedupe(events, n);
    int n_unique = n;
    n = prep_core(events, n, users.n, items.n, layout->kcore);
    if (n == 0) {
        char deduped[48] = "";
        if (layout->dedupe) snprintf(deduped, sizeof(deduped), ", %d after --dedupe first", n_unique);
        die("%s: no events left: %d of %d ratings are > %g%s, and none survive the %d-core filter",
            name, n_kept, n_data_lines, layout->min_rating, deduped, layout->kcore);
    }
    qsort(events, n, sizeof(PrepRating), prep_compare);
    // dense ids: users by first appearance in the file, items by first appearance in the output
    int* item_id = (int*)callocCheck(items.n, sizeof(int));
    int n_users_out = 0, n_items_out = 0;
    OutFile out;
    outfile_open(&out, out_path);
    for (int i = 0; i < n; i++) {
        if (i == 0 || events[i].user != events[i - 1].user) fprintf(out.f, "%s%d", i ? "\n" : "", ++n_users_out);
        if (item_id[events[i].item] == 0) item_id[events[i].item] = ++n_items_out;
        fprintf(out.f, " %d", item_id[events[i].item]);
    }
    fputc('\n', out.f);
    outfile_commit(&out);
    printf("prep: %s (columns %s): %d ratings, %d > %g, %s%d-core: %d users, %d items, %d events -> %s\n", name,
           layout->describe, n_data_lines, n_kept, layout->min_rating, layout->dedupe ? "the earliest of each (user, item), " : "",
           layout->kcore, n_users_out, n_items_out, n, out_path);
    free(item_id);
    free(events);
    prep_index_free(&users);
    prep_index_free(&items);
    free(text);
    input_end(outer);
}
