/* GET /v1/inspections/<name> (issue 5; docs/INSPECTIONS.md): the bureau's inspection
 * queries, each one or more SQL functions of schemas/region/ called with the request's
 * parameters (PQexecParams only: a parameter is never part of SQL text).
 *
 * A query answers with one or more tables ("counties" and "schools" for late-returns,
 * say). JSON (the default):
 *   {"query": "late-returns", "parameters": {"form": "summary", "period": "2024-P1",
 *    "county": null}, "public": false, "generated_at": "…",
 *    "tables": [{"name": "counties", "columns": ["county_id", …],
 *                "rows": [{"county_id": "654201", …}, …]}, …]}
 * CSV (?format=csv, or Accept: text/csv without ?format): one table (?table=NAME, by
 * default the first), RFC 4180 (CRLF, fields quoted when needed), preceded by a UTF-8
 * byte order mark so that Excel reads Chinese text right; arrays are joined by "; ".
 * ?public=1 keeps only the tables meant for publication (counts by county, level, type),
 * with margins added and small cells suppressed (publish.h); a query without such a
 * table answers 400.
 *
 * Access: the caller's token (region-inspector: every county; county-viewer: its own
 * county only: naming another answers 403, naming none means its own). Every call that
 * answers is written to audit_log (who, role, query, parameters, rows returned, county)
 * in the transaction that read the data. */
#ifndef REGION_INSPECT_H
#define REGION_INSPECT_H

#include <stddef.h>

#include "common/macro.h"

struct MHD_Connection;
struct http_reply;
struct server;
struct worker;

#define INSPECT_VALUE_MAX 64 /* bytes of one parameter value */

/* Who asks, from their bearer token. */
struct inspect_caller {
	char name[128];
	char role[32];
	char county_id[8]; /* "" for a region-inspector */
};

/* How many queries there are, and the name of number i (NULL past the last): the
 * numbers metrics_call() and inspect_handle() take. */
size_t inspect_count(void);
const char *inspect_name(size_t i);

/* The number of query name (as in inspect_names), or -ENOENT. */
int inspect_find(const char *name) WUR;

/* Looks the bearer token up: 0 with *ret, -EACCES (no such token, or revoked), or a db.h
 * error. token is the text after "Bearer ". */
int inspect_authenticate(struct worker *w, const char *token, struct inspect_caller *ret) WUR;

/* Answers query number query for caller, reading the parameters of conn: fills *reply,
 * and *ret_status with its status (also when it is an error). Returns 0, or -ENOMEM when
 * not even an error could be made. */
int inspect_handle(struct server *srv, struct worker *w, struct MHD_Connection *conn, int query,
                   const struct inspect_caller *caller, struct http_reply *reply,
                   int *ret_status) WUR;

#endif
