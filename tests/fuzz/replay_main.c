/*
 * replay_main — runs a libFuzzer target over a corpus without libFuzzer, so every
 * build (and `make check`) replays the checked-in seeds under the sanitizers.
 *
 *     replay_<name> [FILE|DIR]...   each file, or every file in each directory
 *     replay_<name>                 every file in $RL_FUZZ_CORPUS/<name>
 *
 * Exits 0 when at least one input ran; 1 when the corpus is missing or empty. A target
 * that finds a violated invariant aborts, which fails the run.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define REPLAY_PREFIX "replay_"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Target name from the program name: ".../replay_request" → "request". */
static const char *target_name(const char *argv0)
{
	const char *base = strrchr(argv0, '/');

	base = base ? base + 1 : argv0;
	if (strncmp(base, REPLAY_PREFIX, strlen(REPLAY_PREFIX)) == 0)
		base += strlen(REPLAY_PREFIX);
	return base;
}

/* Run the target on one file, read into a buffer of exactly its size. 0 or -1. */
static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	uint8_t *data;
	size_t size;

	if (!f || fstat(fileno(f), &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	size = (size_t)st.st_size;
	data = malloc(size ? size : 1);
	if (!data || fread(data, 1, size, f) != size) {
		fprintf(stderr, "replay: %s: read failed\n", path);
		free(data);
		fclose(f);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(data, size);
	free(data);
	return 0;
}

/* Run every regular, non-hidden file of dir in name order; returns how many, or -1. */
static long replay_dir(const char *dir)
{
	struct dirent **names;
	long ran = 0;
	int n = scandir(dir, &names, NULL, alphasort);

	if (n < 0) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;

		if (names[i]->d_name[0] != '.' &&
		    snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name) <
		            (int)sizeof(path) &&
		    stat(path, &st) == 0 && S_ISREG(st.st_mode) && replay_file(path) == 0)
			ran++;
		free(names[i]);
	}
	free(names);
	return ran;
}

static long replay_path(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode))
		return replay_dir(path);
	return replay_file(path) == 0 ? 1 : -1;
}

int main(int argc, char **argv)
{
	const char *name = target_name(argc > 0 ? argv[0] : REPLAY_PREFIX);
	char dflt[4096];
	long total = 0;

	if (argc < 2) {
		const char *root = getenv("RL_FUZZ_CORPUS");

		if (!root || !*root) {
			fprintf(stderr, "replay %s: no corpus given and RL_FUZZ_CORPUS unset\n",
			        name);
			return 1;
		}
		snprintf(dflt, sizeof(dflt), "%s/%s", root, name);
		total = replay_path(dflt);
	}
	for (int i = 1; i < argc && total >= 0; i++) {
		long n = replay_path(argv[i]);

		total = n < 0 ? -1 : total + n;
	}
	if (total <= 0) {
		fprintf(stderr, "replay %s: corpus missing or empty\n", name);
		return 1;
	}
	printf("replay %s: %ld inputs ran\n", name, total);
	return 0;
}
