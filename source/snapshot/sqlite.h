#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace mcproxy::snapshot {

// A failed SQLite call; the message says what was being done and what SQLite answered.
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One prepared statement. Binding is by 1-based index; step() returns true while rows come.
class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql);
  Statement(Statement&&) = default;

  Statement& bind(int index, int64_t value);
  Statement& bind(int index, std::string_view text);
  Statement& bindBlob(int index, std::string_view bytes);
  Statement& bindNull(int index);
  bool step();
  // Runs a statement that returns no rows (or ignores them).
  void run();
  void reset();

  int64_t integer(int column) const;
  std::string text(int column) const;
  std::string blob(int column) const;
  bool isNull(int column) const;

 private:
  struct Finalizer {
    void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
  };
  sqlite3* db_;
  std::unique_ptr<sqlite3_stmt, Finalizer> stmt_;
};

// An open database connection.
class Database {
 public:
  // Opens (creating if needed) `path`, with WAL, foreign keys and a busy timeout.
  explicit Database(const std::string& path);

  sqlite3* handle() const { return db_.get(); }
  const std::string& path() const { return path_; }
  void exec(std::string_view sql);
  Statement prepare(std::string_view sql) { return Statement(db_.get(), sql); }
  // A single integer from a query such as "PRAGMA user_version".
  int64_t queryInt(std::string_view sql);

 private:
  struct Closer {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
  };
  std::string path_;
  std::unique_ptr<sqlite3, Closer> db_;
};

// BEGIN IMMEDIATE ... COMMIT; rolled back when destroyed without commit() (e.g. by an
// exception), so a failed change leaves the database exactly as it was.
class Transaction {
 public:
  explicit Transaction(Database& db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Database& db_;
  bool done_ = false;
};

}  // namespace mcproxy::snapshot
