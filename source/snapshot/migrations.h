#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "source/snapshot/sqlite.h"

namespace mcproxy::snapshot {

struct Migration {
  int64_t version;
  std::string description;
  std::string sql;
  // Work SQL alone cannot say (rebuilding a table to change a CHECK), run after `sql` in the
  // same transaction. Such a migration runs with foreign keys off (checked before the commit).
  void (*code)(Database& db) = nullptr;
};

// Every migration, in order. Append only: a released migration never changes.
const std::vector<Migration>& migrations();
int64_t latestSchemaVersion();

// The highest migration recorded in schema_migrations (0 for a new database).
int64_t schemaVersion(Database& db);

// Applies the migrations above the database's version up to `target` (0: the latest), each in
// its own transaction together with its schema_migrations row. Refuses a database newer than
// this binary knows. Returns the migrations applied.
std::vector<int64_t> migrate(Database& db, int64_t target = 0);

}  // namespace mcproxy::snapshot
