// Which files of a data directory pg_cmk verify looks at, by name (paths
// relative to the data directory, as PostgreSQL names them):
//   relation files  global/, base/<db>/, pg_tblspc/<ts>/PG_15_*/<db>/:
//                   <relfilenode>[_fsm|_vm|_init][.<segment>] and temporary
//                   relations t<backend>_<relfilenode>[...]
//   WAL             pg_wal/<24 hex>[.partial]
//   pgsql_tmp       base/pgsql_tmp/**, pg_tblspc/<ts>/PG_15_*/pgsql_tmp/**
//   spill files     pg_replslot/<slot>/<name>.spill
//   two-phase       pg_twophase/<8 hex>[.tmp]
//   pg_stat_statements  pg_stat_tmp/pgss_query_texts.stat,
//                   pg_stat/pg_stat_statements.stat[.tmp]
//   NOTIFY queue    pg_notify/<4-6 hex>
// The same names the server's src/pg/cipher/file_classes.c and src/pg/sweep/data_scan.c use.
#pragma once
#include "core_guard.h"

#include <cstdint>
#include <optional>
#include <string>

namespace cmk {

struct RelationFileName {
    uint32_t relfilenode = 0;  // the XTS tweak's relation number
    uint32_t segment = 0;      // the .N suffix (0 without one)
    std::string fork;          // "", "_fsm", "_vm" or "_init"
    bool temporary = false;    // t<backend>_ prefix
    std::string relation;      // the name without the segment suffix
};

// Parses a relation file name (a name, not a path); nothing for other files.
std::optional<RelationFileName> parse_relation_file_name(const std::string& name);

bool is_wal_segment_file_name(const std::string& name);
bool is_twophase_file_name(const std::string& name);
bool is_spill_file_name(const std::string& name);
// An SLRU segment as PostgreSQL 15 names them (pg_notify/0000): 4 to 6 hex digits.
bool is_slru_segment_name(const std::string& name);
// PG_15_<catversion>: the directory of this major version in a tablespace.
bool is_tablespace_version_dir(const std::string& name);

}  // namespace cmk
