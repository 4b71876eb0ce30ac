/* Names of the simulated region: see names.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "names.h"
#include "rng.h"
#include "common/macro.h"
#include "common/banned.h"

struct known_county {
	const char *id, *name;
};

static const struct known_county tacheng[] = {
        {"654201", "塔城市"},
        {"654202", "乌苏市"},
        {"654203", "沙湾市"},
        {"654221", "额敏县"},
        {"654224", "托里县"},
        {"654225", "裕民县"},
        {"654226", "和布克赛尔蒙古自治县"},
};
static const struct known_county altay[] = {
        {"654301", "阿勒泰市"}, {"654321", "布尔津县"}, {"654322", "富蕴县"},
        {"654323", "福海县"},   {"654324", "哈巴河县"}, {"654325", "青河县"},
        {"654326", "吉木乃县"},
};
static const struct known_county aksu[] = {
        {"652901", "阿克苏市"}, {"652902", "库车市"},   {"652922", "温宿县"},
        {"652924", "沙雅县"},   {"652925", "新和县"},   {"652926", "拜城县"},
        {"652927", "乌什县"},   {"652928", "阿瓦提县"}, {"652929", "柯坪县"},
};

static const struct known_region {
	const char *code, *name;
	const struct known_county *counties;
	size_t count;
} regions[] = {
        {"654200", "塔城地区", tacheng, ARRAY_SIZE(tacheng)},
        {"654300", "阿勒泰地区", altay, ARRAY_SIZE(altay)},
        {"652900", "阿克苏地区", aksu, ARRAY_SIZE(aksu)},
};

/* Two-character place names for made-up counties and regions. */
static const char *const places[] = {
        "伊宁", "霍城", "巩留", "新源", "昭苏", "特克", "尼勒", "察布", "奎屯", "精河",
        "博乐", "温泉", "和静", "焉耆", "轮台", "若羌", "且末", "于田", "洛浦", "皮山",
        "墨玉", "策勒", "民丰", "叶城", "泽普", "莎车", "麦盖", "岳普", "伽师", "巴楚",
        "疏附", "疏勒", "英吉", "阿图", "乌恰", "阿合", "柯坪", "鄯善", "托克", "伊吾",
};

/* 40 places x 3 suffixes: more names than the 99 two-digit codes of a region */
static const char *const suffixes[] = {"县", "市", "自治县"};

static const char *const towns[] = {
        "城关镇",   "东风镇",       "红星乡",       "团结乡",       "和平街道",   "向阳乡",
        "幸福镇",   "光明乡",       "新华街道",     "胜利镇",       "前进乡",     "友谊街道",
        "建设镇",   "跃进乡",       "民主街道",     "五一乡",       "二工镇",     "三道河乡",
        "铁厂沟镇", "喀拉苏乡",     "阿西尔乡",     "恰夏乡",       "也门勒乡",   "库普乡",
        "吉也克镇", "萨尔布拉克镇", "杰勒阿尕什乡", "额玛勒郭楞乡", "博孜达克乡", "上户镇",
};

static const struct known_region *known(const char *code)
{
	for (size_t i = 0; i < ARRAY_SIZE(regions); i++)
		if (strcmp(regions[i].code, code) == 0)
			return &regions[i];
	return NULL;
}

int names_region_code_valid(const char *code)
{
	if (strlen(code) != 6)
		return 0;
	for (size_t i = 0; i < 6; i++)
		if (code[i] < '0' || code[i] > '9')
			return 0;
	return strcmp(code + 4, "00") == 0 && strcmp(code + 2, "0000") != 0 &&
	       strncmp(code, "00", 2) != 0;
}

void names_region(const char *code, char ret[static NAMES_MAX])
{
	const struct known_region *k = known(code);
	unsigned n = (unsigned)((code[2] - '0') * 10 + (code[3] - '0'));

	if (k)
		snprintf(ret, NAMES_MAX, "%s", k->name);
	else
		snprintf(ret, NAMES_MAX, "%s地区", places[n % ARRAY_SIZE(places)]);
}

/* 1 when id is one of the known counties of k. */
static int taken(const struct known_region *k, const char *id)
{
	for (size_t i = 0; k && i < k->count; i++)
		if (strcmp(k->counties[i].id, id) == 0)
			return 1;
	return 0;
}

int names_county(const char *region_code, size_t index, char ret_id[static 7],
                 char ret_name[static NAMES_MAX])
{
	const struct known_region *k = known(region_code);
	size_t made = index - (k ? k->count : 0), seen = 0;

	if (k && index < k->count) {
		memcpy(ret_id, k->counties[index].id, 7);
		snprintf(ret_name, NAMES_MAX, "%s", k->counties[index].name);
		return 0;
	}
	/* made-up counties take the free suffixes from 21 up (county-level cities keep the
	 * low ones), then 01..20 */
	for (int pass = 0; pass < 2; pass++) {
		for (int s = pass ? 1 : 21; s <= (pass ? 20 : 99); s++) {
			char id[7];

			if (snprintf(id, sizeof(id), "%.4s%02d", region_code, s) != 6 ||
			    taken(k, id))
				continue;
			if (seen++ < made)
				continue;
			memcpy(ret_id, id, 7);
			snprintf(ret_name, NAMES_MAX, "%s%s", places[made % ARRAY_SIZE(places)],
			         suffixes[made / ARRAY_SIZE(places) % ARRAY_SIZE(suffixes)]);
			return 0;
		}
	}
	return -ERANGE;
}

const char *names_town(struct rng *r)
{
	return towns[rng_range(r, 0, (long)ARRAY_SIZE(towns) - 1)];
}

void names_numeral(int n, char ret[static 16])
{
	static const char *const digits[] = {"",   "一", "二", "三", "四",
	                                     "五", "六", "七", "八", "九"};
	int tens = n / 10, ones = n % 10;

	if (n < 1 || n > 99) {
		snprintf(ret, 16, "%d", n);
		return;
	}
	if (tens == 0)
		snprintf(ret, 16, "%s", digits[ones]);
	else
		snprintf(ret, 16, "%s十%s", tens == 1 ? "" : digits[tens], digits[ones]);
}
