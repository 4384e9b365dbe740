#include "source/common/http/headers.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <charconv>

namespace mcproxy::http {

const std::string* HeaderMap::get(std::string_view name) const {
  for (const Header& header : fields_) {
    if (header.name == name) return &header.value;
  }
  return nullptr;
}

std::string* HeaderMap::get(std::string_view name) {
  for (Header& header : fields_) {
    if (header.name == name) return &header.value;
  }
  return nullptr;
}

void HeaderMap::set(std::string_view name, std::string value) {
  auto first = std::find_if(fields_.begin(), fields_.end(),
                            [&](const Header& header) { return header.name == name; });
  if (first == fields_.end()) {
    fields_.push_back({std::string(name), std::move(value)});
    return;
  }
  first->value = std::move(value);
  fields_.erase(std::remove_if(first + 1, fields_.end(),
                               [&](const Header& header) { return header.name == name; }),
                fields_.end());
}

void HeaderMap::add(std::string_view name, std::string value) {
  fields_.push_back({std::string(name), std::move(value)});
}

size_t HeaderMap::remove(std::string_view name) {
  return std::erase_if(fields_, [&](const Header& header) { return header.name == name; });
}

int HeaderMap::status() const {
  const std::string_view text = valueOf(":status");
  int status = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), status);
  return error == std::errc() && end == text.data() + text.size() ? status : 0;
}

bool isHopByHop(std::string_view name, std::string_view value) {
  static constexpr std::array<std::string_view, 7> kHopByHop = {
      "connection", "keep-alive",         "proxy-connection",   "transfer-encoding",
      "upgrade",    "proxy-authenticate", "proxy-authorization"};
  for (std::string_view hop : kHopByHop) {
    if (name == hop) return true;
  }
  return name == "te" && value != "trailers";
}

namespace {

const uint8_t* bytes(std::string_view text) {
  return reinterpret_cast<const uint8_t*>(text.data());
}

}  // namespace

bool validHeaderName(std::string_view name) {
  return !name.empty() && nghttp2_check_header_name(bytes(name), name.size()) != 0;
}

bool validHeaderValue(std::string_view value) {
  return nghttp2_check_header_value(bytes(value), value.size()) != 0;
}

bool validPath(std::string_view path) {
  return !path.empty() && nghttp2_check_path(bytes(path), path.size()) != 0;
}

bool validAuthority(std::string_view authority) {
  return !authority.empty() && nghttp2_check_authority(bytes(authority), authority.size()) != 0;
}

const char* reasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 421:
      return "Misdirected Request";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";
  }
}

void lowerCaseInPlace(std::string& text) {
  for (char& c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
}

}  // namespace mcproxy::http
