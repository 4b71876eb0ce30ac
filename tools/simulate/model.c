/* One school's campaign: see model.h. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "model.h"
#include "region.h"
#include "rng.h"
#include "common/datetime.h"
#include "common/banned.h"

#define INCIDENTS_MAX 200 /* per school: a bound, far above the Poisson process's draws */
#define ITEMS_MAX 200
/* incidents per 1,000 students per 30 days */
#define INCIDENT_RATE 0.25

static const char *const incident_types[] = {"physical", "verbal",   "relational",
                                             "cyber",    "property", "sexual_harassment"};
static const char *const settings[] = {"classroom", "dormitory",  "toilet", "playground", "canteen",
                                       "commute",   "off_campus", "online", "other"};
static const char *const settings_zh[] = {"教室",     "宿舍", "厕所", "操场",  "食堂",
                                          "上学途中", "校外", "网络", "校园内"};
static const char *const bands[] = {"primary_low", "primary_high", "junior", "senior"};
static const char *const measures[] = {"education", "discipline", "special_school_referral",
                                       "police_referral"};
enum { MEASURE_EDUCATION, MEASURE_DISCIPLINE, MEASURE_SPECIAL_SCHOOL, MEASURE_POLICE };
static const char *const sources[] = {"screening", "inspection", "incident", "other"};
enum { SOURCE_SCREENING, SOURCE_INSPECTION, SOURCE_INCIDENT, SOURCE_OTHER };
static const char *const categories[] = {"facility", "supervision", "education", "mechanism",
                                         "other"};
static const char *const roles[] = {"principal",     "vice_principal", "safety_officer",
                                    "class_teacher", "counsellor",     "other"};

/* What the summary of an incident says, by its first type: the text before and after
 * the place where it happened. */
static const char *const incident_texts[][2] = {
        {"课间在", "发生推搡，已分别谈话并通知双方家长。"},
        {"学生在", "给同学起侮辱性绰号，班主任已批评教育并督促道歉。"},
        {"部分学生在", "孤立同班同学，已开展班级心理辅导。"},
        {"学生在", "发布嘲讽同学的图片，已删除并批评教育。"},
        {"高年级学生在", "索要低年级学生零花钱，已追回财物并通知家长。"},
        {"学生在", "对同学有不当言语和肢体接触，已严肃处理并通知家长。"},
};

/* Problems and measures of the ledger, by category (5 categories x 3). */
static const char *const problems[][3][2] = {
        {{"教学楼东侧楼梯间存在监控盲区", "加装监控并纳入值班巡查"},
         {"宿舍区夜间照明不足", "更换照明设施并增加夜间巡查"},
         {"校园围墙局部破损", "修补围墙并设置警示标识"}},
        {{"课间走廊巡查不到位", "落实教师课间值守制度"},
         {"寄宿生夜间管理力量不足", "增配宿舍管理员并建立夜查记录"},
         {"上下学时段校门口值守人员不足", "安排教师和保安轮岗值守"}},
        {{"部分班级未开展防欺凌专题教育", "补上专题教育课并纳入教学计划"},
         {"家长对欺凌防治认识不足", "召开专题家长会并发放告家长书"},
         {"教职工对欺凌早期识别不熟悉", "组织全员专题培训并考核"}},
        {{"学生欺凌治理委员会未定期开会", "建立每月例会制度"},
         {"欺凌事件报告流程不清晰", "修订报告流程并全员培训"},
         {"举报电话和信箱未公开", "在校门口和班级公示举报渠道"}},
        {{"心理咨询室使用率低", "安排专职心理教师定时开放"},
         {"校园欺凌应急预案未演练", "本学期组织一次应急演练"},
         {"学生手册未写入防欺凌内容", "修订学生手册并组织学习"}},
};

/* The roles that answer for each category. */
static const int category_roles[][2] = {{2, 1}, {1, 3}, {3, 4}, {0, 1}, {4, 5}};

static const char *const summary_texts[][3] = {
        {"完成全校学生排查，建立问题清单“一本账”。", "部分寄宿生夜间管理力量不足。",
         "落实问题清单整改，开展专题教育。"},
        {"集中整治期间落实整改措施，开展专题教育和家长会。",
         "个别问题整改进度滞后，心理教师力量不足。", "加强督办，完成剩余整改事项。"},
        {"配合督导检查，整改事项基本完成，建立长效机制。", "长效机制仍需巩固，家校协同有待加强。",
         "持续开展排查，做好“回头看”准备。"},
};

void model_day_text(int64_t day, char ret[static 11])
{
	struct date d;

	date_from_days(day, &d);
	date_format(&d, ret);
}

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/* The school's open days within [first, last]: *ret_from..*ret_to (empty: from > to). */
static void open_days(const struct sim_school *s, int64_t first, int64_t last, int64_t *ret_from,
                      int64_t *ret_to)
{
	*ret_from = s->opened.year ? max64(first, date_to_days(&s->opened)) : first;
	*ret_to = s->closed.year ? min64(last, date_to_days(&s->closed)) : last;
}

static void split(struct rng *r, int n, int *ret_female, int *ret_male)
{
	*ret_female = (int)rng_range(r, 0, n);
	*ret_male = n - *ret_female;
}

static void draw_incident(struct incident *i, const struct sim_school *s, int64_t day,
                          struct rng *r)
{
	static const double level_w[] = {0.85, 0.13, 0.02};
	static const double type_w[] = {0.35, 0.30, 0.15, 0.08, 0.08, 0.04};
	/* classroom, dormitory, toilet, playground, canteen, commute, off_campus, online, other */
	double setting_w[] = {0.25, 0.10, 0.10, 0.20, 0.05, 0.08, 0.07, 0.08, 0.07};
	size_t first, second;

	memset(i, 0, sizeof(*i));
	i->occurred = day;
	i->discovered = day + (rng_chance(r, 0.7)    ? 0
	                       : rng_chance(r, 0.67) ? 1
	                                             : rng_range(r, 2, 5));
	i->reported = i->discovered + (rng_chance(r, 0.75)  ? 0
	                               : rng_chance(r, 0.8) ? 1
	                                                    : rng_range(r, 2, 4));
	i->level = (int)rng_weighted(r, level_w, 3) + 1;
	first = rng_weighted(r, type_w, ARRAY_SIZE(type_w));
	i->types = 1u << first;
	if (rng_chance(r, 0.25)) {
		second = rng_weighted(r, type_w, ARRAY_SIZE(type_w));
		i->types |= 1u << second;
	}
	if (s->type != SCHOOL_SENIOR && s->type != SCHOOL_NINE_YEAR)
		setting_w[1] = 0; /* no boarders */
	i->setting = (i->types & (1u << 3)) && rng_chance(r, 0.8)
	                     ? 7
	                     : (int)rng_weighted(r, setting_w, ARRAY_SIZE(setting_w));
	switch (s->type) {
	case SCHOOL_PRIMARY:
		i->band = (int)rng_range(r, 0, 1);
		break;
	case SCHOOL_JUNIOR:
		i->band = 2;
		break;
	case SCHOOL_SENIOR:
		i->band = 3;
		break;
	default:
		i->band = (int)rng_range(r, 1, 2);
		break;
	}
	split(r, rng_chance(r, 0.8) ? 1 : 2, &i->victims_f, &i->victims_m);
	split(r, (int)rng_range(r, 1, i->level == 1 ? 2 : 3), &i->perps_f, &i->perps_m);
	i->measures = 1u << MEASURE_EDUCATION;
	if (i->level >= 2)
		i->measures |= 1u << MEASURE_DISCIPLINE;
	if (i->level == 3) {
		i->measures |= 1u << MEASURE_POLICE;
		if (rng_chance(r, 0.3))
			i->measures |= 1u << MEASURE_SPECIAL_SCHOOL;
	}
	i->parents_notified = rng_chance(r, 0.98);
	i->support = i->level >= 2 || rng_chance(r, 0.5);
	i->closed_at_report = i->level == 1 && rng_chance(r, 0.4);
	if (!i->closed_at_report && rng_chance(r, 0.08)) {
		i->corrected = i->reported + rng_range(r, 5, 20);
		i->escalated = i->level == 2 && rng_chance(r, 0.25);
	}
}

static void draw_item(struct ledger_item *it, int64_t found, int source, struct rng *r)
{
	static const double category_w[] = {0.3, 0.25, 0.2, 0.15, 0.1};
	double outcome = rng_uniform(r);

	memset(it, 0, sizeof(*it));
	it->found = found;
	it->source = source;
	it->category = source == SOURCE_INCIDENT ? (int)rng_range(r, 1, 3)
	                                         : (int)rng_weighted(r, category_w, 5);
	it->text = (int)rng_range(r, 0, 2);
	it->role = category_roles[it->category][rng_range(r, 0, 1)];
	it->deadline = found + rng_range(r, 15, 75);
	if (outcome < 0.72)
		it->completed = found + rng_range(r, 3, it->deadline - found);
	else if (outcome < 0.87)
		it->completed = it->deadline + rng_range(r, 5, 60);
	if (it->completed && rng_chance(r, 0.4))
		it->verified = it->completed + rng_range(r, 7, 20);
	it->progressing = rng_chance(r, 0.85);
}

static int cmp_item(const void *a, const void *b)
{
	const struct ledger_item *x = a, *y = b;

	if (x->found != y->found)
		return x->found < y->found ? -1 : 1;
	return x->number < y->number ? -1 : x->number > y->number;
}

/* Adds an item found on day found when the school is open then. */
static void add_item(struct school_model *m, int64_t found, int64_t from, int64_t to, int source,
                     struct rng *r)
{
	struct ledger_item it;

	draw_item(&it, found, source, r); /* drawn either way: the stream stays aligned */
	if (found < from || found > to || m->item_count >= ITEMS_MAX)
		return;
	it.number = (int)m->item_count;
	m->items[m->item_count++] = it;
}

int model_build(struct school_model *ret, const struct sim_school *s, int64_t first, int64_t last,
                struct rng *r)
{
	struct school_model m = {0};
	double rate = INCIDENT_RATE * (double)s->enrolled / 1000.0 / 30.0, t;
	int64_t from, to;
	long n;

	m.incidents = calloc(INCIDENTS_MAX, sizeof(*m.incidents));
	m.items = calloc(ITEMS_MAX, sizeof(*m.items));
	if (!m.incidents || !m.items) {
		model_release(&m);
		return -ENOMEM;
	}
	open_days(s, first, last, &from, &to);
	/* incidents: a Poisson process over the open days, reported while still open */
	for (t = (double)from + rng_exponential(r, rate);
	     t < (double)to - 4 && m.incident_count < INCIDENTS_MAX;
	     t += rng_exponential(r, rate)) {
		struct incident *i = &m.incidents[m.incident_count];

		draw_incident(i, s, (int64_t)floor(t), r);
		if (i->reported > to - 1)
			continue;
		if (i->corrected && (i->corrected > to - 1 || i->corrected > last + 20))
			i->corrected = 0, i->escalated = 0;
		i->number = (int)++m.incident_count;
	}
	/* the ledger: found at screening (March, April), after serious incidents, at the
	 * summer checks and at the autumn inspections */
	n = rng_range(r, 1, 4);
	for (long k = 0; k < n; k++)
		add_item(&m, first + rng_range(r, 9, 55), from, to, SOURCE_SCREENING, r);
	for (size_t k = 0; k < m.incident_count; k++)
		if (m.incidents[k].level >= 2)
			add_item(&m, m.incidents[k].reported + rng_range(r, 1, 5), from, to,
			         SOURCE_INCIDENT, r);
	if (rng_chance(r, 0.5))
		add_item(&m, first + rng_range(r, 92, 183), from, to,
		         rng_chance(r, 0.7) ? SOURCE_INSPECTION : SOURCE_OTHER, r);
	n = rng_range(r, 0, 2);
	for (long k = 0; k < n; k++)
		add_item(&m, last - rng_range(r, 10, 52), from, to, SOURCE_INSPECTION, r);
	qsort(m.items, m.item_count, sizeof(*m.items), cmp_item);
	for (size_t k = 0; k < m.item_count; k++)
		m.items[k].number = (int)k + 1;
	*ret = m;
	return 0;
}

void model_release(struct school_model *m)
{
	free(m->incidents);
	free(m->items);
	memset(m, 0, sizeof(*m));
}

/* Adds name: the date of day, or null when day is 0. */
static int add_day(cJSON *o, const char *name, int64_t day)
{
	char text[11];

	if (!day)
		return cJSON_AddNullToObject(o, name) ? 0 : -ENOMEM;
	model_day_text(day, text);
	return cJSON_AddStringToObject(o, name, text) ? 0 : -ENOMEM;
}

static int add_int(cJSON *o, const char *name, long v)
{
	return cJSON_AddNumberToObject(o, name, (double)v) ? 0 : -ENOMEM;
}

static int add_bool(cJSON *o, const char *name, int v)
{
	return cJSON_AddBoolToObject(o, name, v) ? 0 : -ENOMEM;
}

/* An array of the names whose bit is set in mask. */
static int add_set(cJSON *o, const char *name, unsigned mask, const char *const *names, size_t n)
{
	cJSON *a = cJSON_AddArrayToObject(o, name);

	if (!a)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		cJSON *s;

		if (!(mask & (1u << i)))
			continue;
		s = cJSON_CreateString(names[i]);
		if (!s || !cJSON_AddItemToArray(a, s)) {
			cJSON_Delete(s);
			return -ENOMEM;
		}
	}
	return 0;
}

static int add_pair(cJSON *o, const char *name, int female, int male)
{
	cJSON *p = cJSON_AddObjectToObject(o, name);

	if (!p || add_int(p, "female", female) < 0 || add_int(p, "male", male) < 0)
		return -ENOMEM;
	return 0;
}

cJSON *model_screening(const struct sim_school *s, struct rng *r)
{
	static const char *const kinds[] = {"physical", "verbal", "relational", "cyber",
	                                    "property"};
	static const double kind_w[] = {0.3, 0.3, 0.2, 0.1, 0.1};
	long enrolled = s->enrolled, screened = enrolled - rng_range(r, 0, enrolled / 50);
	long risk = lround((double)enrolled * (0.002 + 0.01 * rng_uniform(r)));
	long by_kind[5] = {0}, checked = rng_range(r, 15, 60);
	cJSON *d = cJSON_CreateObject(), *k;

	for (long i = 0; i < risk; i++)
		by_kind[rng_weighted(r, kind_w, 5)]++;
	if (!d || add_int(d, "students_enrolled", enrolled) < 0 ||
	    add_int(d, "students_screened", screened) < 0 ||
	    add_int(d, "risk_cases_found", risk) < 0 ||
	    !(k = cJSON_AddObjectToObject(d, "risk_cases_by_type")))
		goto fail;
	for (size_t i = 0; i < 5; i++)
		if (add_int(k, kinds[i], by_kind[i]) < 0)
			goto fail;
	if (add_int(d, "interventions_taken", risk) < 0 ||
	    add_int(d, "home_visits", risk * rng_range(r, 1, 3) + rng_range(r, 0, 5)) < 0 ||
	    add_int(d, "counselling_sessions", risk * rng_range(r, 1, 4)) < 0 ||
	    add_int(d, "parent_meetings", rng_range(r, 1, 6)) < 0 ||
	    add_int(d, "staff_trained", rng_range(r, 20, 40 + enrolled / 20)) < 0 ||
	    add_int(d, "student_lessons", rng_range(r, 4, 30)) < 0 ||
	    add_int(d, "drills_held", rng_range(r, 1, 4)) < 0 ||
	    add_int(d, "hidden_risk_points_checked", checked) < 0 ||
	    add_int(d, "hidden_risk_points_found", rng_range(r, 0, checked < 6 ? checked : 6)) <
	            0 ||
	    add_bool(d, "committee_established", rng_chance(r, 0.95)) < 0 ||
	    add_bool(d, "reporting_channel_published", rng_chance(r, 0.93)) < 0)
		goto fail;
	return d;
fail:
	cJSON_Delete(d);
	return NULL;
}

/* Sets the integer member name of o. */
static int set_int(cJSON *o, const char *name, long v)
{
	cJSON *n = cJSON_CreateNumber((double)v);

	if (!n || !cJSON_ReplaceItemInObjectCaseSensitive(o, name, n)) {
		cJSON_Delete(n);
		return -ENOMEM;
	}
	return 0;
}

static long get_int(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsNumber(v) ? (long)v->valuedouble : 0;
}

cJSON *model_screening_corrected(const cJSON *original, struct rng *r)
{
	cJSON *d = cJSON_Duplicate(original, 1);
	long enrolled = get_int(original, "students_enrolled");

	if (!d || set_int(d, "students_screened", enrolled - rng_range(r, 0, 2)) < 0 ||
	    set_int(d, "counselling_sessions",
	            get_int(original, "counselling_sessions") + rng_range(r, 1, 5)) < 0 ||
	    set_int(d, "home_visits", get_int(original, "home_visits") + rng_range(r, 0, 3)) < 0) {
		cJSON_Delete(d);
		return NULL;
	}
	return d;
}

static size_t first_type(unsigned types)
{
	for (size_t i = 0; i < ARRAY_SIZE(incident_types); i++)
		if (types & (1u << i))
			return i;
	return 0;
}

cJSON *model_incident(const struct incident *i, int corrected)
{
	char ref[24], text[512];
	int level = corrected && i->escalated ? 3 : i->level;
	unsigned m = i->measures;
	int closed = i->closed_at_report || corrected;
	cJSON *d = cJSON_CreateObject();

	if (level == 3)
		m |= 1u << MEASURE_POLICE;
	snprintf(ref, sizeof(ref), "2024-%03d", i->number);
	snprintf(text, sizeof(text), "%s%s%s%s%s", incident_texts[first_type(i->types)][0],
	         settings_zh[i->setting], incident_texts[first_type(i->types)][1],
	         level == 3 ? "已移送公安机关依法处理。" : "",
	         corrected ? "（更正：后续已结案。）" : "");
	if (!d || !cJSON_AddStringToObject(d, "incident_ref", ref) ||
	    add_day(d, "occurred_on", i->occurred) < 0 ||
	    add_day(d, "discovered_on", i->discovered) < 0 ||
	    add_day(d, "reported_on", i->reported) < 0 || add_int(d, "level", level) < 0 ||
	    add_set(d, "types", i->types, incident_types, ARRAY_SIZE(incident_types)) < 0 ||
	    !cJSON_AddStringToObject(d, "setting", settings[i->setting]) ||
	    !cJSON_AddStringToObject(d, "grade_band", bands[i->band]) ||
	    add_pair(d, "victims", i->victims_f, i->victims_m) < 0 ||
	    add_pair(d, "perpetrators", i->perps_f, i->perps_m) < 0 ||
	    add_set(d, "measures", m, measures, ARRAY_SIZE(measures)) < 0 ||
	    add_bool(d, "parents_notified", i->parents_notified) < 0 ||
	    add_bool(d, "psychological_support", i->support || level == 3) < 0 ||
	    !cJSON_AddStringToObject(d, "status", closed ? "closed" : "open") ||
	    add_day(d, "closed_on",
	            !closed     ? 0
	            : corrected ? i->corrected - 1
	                        : i->reported) < 0 ||
	    !cJSON_AddStringToObject(d, "summary", text)) {
		cJSON_Delete(d);
		return NULL;
	}
	return d;
}

/* The status of an item on day as_of. */
static const char *item_status(const struct ledger_item *it, int64_t as_of)
{
	if (it->completed && it->completed <= as_of)
		return it->verified && it->verified <= as_of ? "verified" : "done";
	return it->progressing && as_of >= it->found + 5 ? "in_progress" : "open";
}

static int add_item_json(cJSON *items, const struct ledger_item *it, int64_t as_of)
{
	cJSON *o = cJSON_CreateObject();
	char id[16];

	if (!o || !cJSON_AddItemToArray(items, o)) {
		cJSON_Delete(o);
		return -ENOMEM;
	}
	snprintf(id, sizeof(id), "R-%03d", it->number);
	if (!cJSON_AddStringToObject(o, "item_id", id) || add_day(o, "found_on", it->found) < 0 ||
	    !cJSON_AddStringToObject(o, "source", sources[it->source]) ||
	    !cJSON_AddStringToObject(o, "category", categories[it->category]) ||
	    !cJSON_AddStringToObject(o, "problem", problems[it->category][it->text][0]) ||
	    !cJSON_AddStringToObject(o, "measure", problems[it->category][it->text][1]) ||
	    !cJSON_AddStringToObject(o, "responsible_role", roles[it->role]) ||
	    add_day(o, "deadline", it->deadline) < 0 ||
	    !cJSON_AddStringToObject(o, "status", item_status(it, as_of)) ||
	    add_day(o, "completed_on",
	            it->completed && it->completed <= as_of ? it->completed : 0) < 0)
		return -ENOMEM;
	return 0;
}

cJSON *model_ledger(const struct school_model *m, int64_t as_of)
{
	cJSON *d = cJSON_CreateObject(), *items;

	if (!d || add_day(d, "as_of", as_of) < 0 || !(items = cJSON_AddArrayToObject(d, "items")))
		goto fail;
	for (size_t k = 0; k < m->item_count; k++)
		if (m->items[k].found <= as_of && add_item_json(items, &m->items[k], as_of) < 0)
			goto fail;
	return d;
fail:
	cJSON_Delete(d);
	return NULL;
}

cJSON *model_summary(const struct school_model *m, int64_t start, int64_t end, int64_t on,
                     int phase_no, struct rng *r)
{
	long levels[3] = {0}, total = 0, done = 0, overdue = 0;
	const char *const *texts = summary_texts[(phase_no - 1) % 3];
	cJSON *d = cJSON_CreateObject(), *l;

	for (size_t k = 0; k < m->incident_count; k++) {
		const struct incident *i = &m->incidents[k];

		if (i->occurred >= start && i->occurred <= end && i->reported <= on)
			levels[(i->corrected && i->corrected <= on && i->escalated ? 3 : i->level) -
			       1]++;
	}
	for (size_t k = 0; k < m->item_count; k++) {
		const struct ledger_item *it = &m->items[k];

		if (it->found > on)
			continue;
		total++;
		if (it->completed && it->completed <= on)
			done++;
		else if (it->deadline < on)
			overdue++;
	}
	if (!d || !cJSON_AddStringToObject(d, "achievements", texts[0]) ||
	    !cJSON_AddStringToObject(d, "difficulties", texts[1]) ||
	    !cJSON_AddStringToObject(d, "next_steps", texts[2]) ||
	    !(l = cJSON_AddObjectToObject(d, "incidents_by_level")) ||
	    add_int(l, "level_1", levels[0]) < 0 || add_int(l, "level_2", levels[1]) < 0 ||
	    add_int(l, "level_3", levels[2]) < 0 || add_int(d, "ledger_items_total", total) < 0 ||
	    add_int(d, "ledger_items_done", done) < 0 ||
	    add_int(d, "ledger_items_overdue", overdue) < 0 ||
	    add_int(d, "training_sessions", rng_range(r, 1, 8)) < 0 ||
	    add_int(d, "parent_outreach", rng_range(r, 3, 40)) < 0 ||
	    add_bool(d, "principal_confirmed", rng_chance(r, 0.95)) < 0) {
		cJSON_Delete(d);
		return NULL;
	}
	return d;
}
