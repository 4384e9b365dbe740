#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mcproxy::http {

struct Header {
  std::string name;  // lower case, as HTTP/2 requires; pseudo-headers start with ':'
  std::string value;
};

// A request's or response's header section (or trailers), in order. Requests carry the
// pseudo-headers :method, :scheme, :path and :authority first; responses :status. Names are lower
// case. A vector, not a map: sections are small, and codecs hand them to nghttp2 as they are.
class HeaderMap {
 public:
  using iterator = std::vector<Header>::iterator;
  using const_iterator = std::vector<Header>::const_iterator;

  HeaderMap() = default;
  HeaderMap(std::initializer_list<Header> fields) : fields_(fields) {}

  // The first field named `name`, or null.
  const std::string* get(std::string_view name) const;
  std::string* get(std::string_view name);
  // Sets `name` to `value`: the first field of that name keeps its place, any others go; a
  // new name is appended.
  void set(std::string_view name, std::string value);
  // Appends a field (another of the same name stays).
  void add(std::string_view name, std::string value);
  // Removes every field named `name`; returns how many.
  size_t remove(std::string_view name);

  // Pseudo-headers ("" when missing).
  std::string_view method() const { return valueOf(":method"); }
  std::string_view path() const { return valueOf(":path"); }
  std::string_view authority() const { return valueOf(":authority"); }
  // The response status, or 0 when missing or not a number.
  int status() const;

  std::vector<Header>& fields() { return fields_; }
  const std::vector<Header>& fields() const { return fields_; }
  size_t size() const { return fields_.size(); }
  bool empty() const { return fields_.empty(); }
  void reserve(size_t n) { fields_.reserve(n); }
  void clear() { fields_.clear(); }
  void push_back(Header header) { fields_.push_back(std::move(header)); }
  Header& back() { return fields_.back(); }
  Header& operator[](size_t i) { return fields_[i]; }
  const Header& operator[](size_t i) const { return fields_[i]; }
  iterator begin() { return fields_.begin(); }
  iterator end() { return fields_.end(); }
  const_iterator begin() const { return fields_.begin(); }
  const_iterator end() const { return fields_.end(); }

 private:
  std::string_view valueOf(std::string_view name) const {
    const std::string* value = get(name);
    return value != nullptr ? std::string_view(*value) : std::string_view();
  }
  std::vector<Header> fields_;
};

// Room a codec reserves for a header section it collects (1 KiB, which malloc's per-thread
// cache still serves): a usual section plus the pseudo-headers and forwarding headers added on
// the way, so that it is built without reallocation. A longer section grows once.
inline constexpr size_t kUsualHeaderFields = 16;

// Connection-specific headers (RFC 9110 §7.6.1, RFC 9113 §8.2.2) that a proxy must not forward.
// "te" is hop-by-hop too, except "te: trailers", which gRPC needs end to end.
bool isHopByHop(std::string_view name, std::string_view value);

// RFC 9110 syntax, as nghttp2 checks what arrives over HTTP/2. A request that came over HTTP/1.1
// is held to the same rules before it is forwarded, so that no backend ever gets a NUL, CR or
// LF inside a header (which an HTTP/1.1 backend would read as a header or request of its own).
bool validHeaderName(std::string_view name);  // a lower-case token
bool validHeaderValue(std::string_view value);
bool validPath(std::string_view path);  // request target: no whitespace or control bytes
bool validAuthority(std::string_view authority);

// "OK", "Not Found", ... for a status code ("Status" for one without a common phrase).
const char* reasonPhrase(int status);

// Lower-cases ASCII letters in place.
void lowerCaseInPlace(std::string& text);

}  // namespace mcproxy::http
