#include <stdio.h>

#include "warren/names.h"

/* 64 each, so one random byte per word (masked) is unbiased.  Short,
 * unambiguous words that read well in a URL. */
static const char *const adjectives[64] = {
    "amber",  "bold",   "brave",  "brisk",  "calm",   "clever", "cosy",
    "crisp",  "curly",  "dapper", "eager",  "early",  "fancy",  "fast",
    "fuzzy",  "gentle", "giddy",  "glad",   "golden", "grand",  "happy",
    "hazy",   "humble", "jolly",  "keen",   "kind",   "lively", "lucky",
    "mellow", "merry",  "misty",  "modest", "neat",   "nimble", "noble",
    "odd",    "plucky", "polite", "proud",  "quick",  "quiet",  "rapid",
    "ready",  "rosy",   "royal",  "rustic", "shiny",  "silent", "silver",
    "sleek",  "smart",  "snowy",  "solid",  "sunny",  "swift",  "tidy",
    "tiny",   "velvet", "vivid",  "warm",   "wild",   "wise",   "witty",
    "young"};
static const char *const animals[64] = {
    "badger", "beaver", "bison",  "bobcat", "camel",  "cobra",  "condor",
    "cougar", "coyote", "crane",  "dingo",  "dolphin", "eagle", "ferret",
    "finch",  "fox",    "gecko",  "gibbon", "heron",  "hippo",  "ibex",
    "iguana", "jackal", "koala",  "lemur",  "lion",   "llama",  "lynx",
    "magpie", "marten", "mole",   "moose",  "newt",   "ocelot", "orca",
    "otter",  "owl",    "panda",  "parrot", "pelican", "puffin", "quail",
    "rabbit", "raven",  "robin",  "salmon", "seal",   "shark",  "sloth",
    "spider", "stork",  "swan",   "tapir",  "tiger",  "toucan", "trout",
    "turtle", "viper",  "walrus", "weasel", "whale",  "wombat", "yak",
    "zebra"};

void wr_name_random(char *out, wr_rand_fn rand, void *rand_ud) {
  uint8_t r[6];
  rand(r, sizeof r, rand_ud);
  /* 32 bits mod 10000 has a bias below 10^-5: irrelevant for names. */
  unsigned digits = ((unsigned)r[2] << 24 | (unsigned)r[3] << 16 |
                     (unsigned)r[4] << 8 | r[5]) % 10000u;
  snprintf(out, WR_NAME_RANDOM_MAX, "%s-%s-%04u", adjectives[r[0] & 63],
           animals[r[1] & 63], digits);
}
