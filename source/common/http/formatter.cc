#include "source/common/http/formatter.h"

#include <absl/strings/ascii.h>

#include "source/common/router/route.h"

namespace mcproxy::http {

absl::StatusOr<Formatter> Formatter::parse(std::string_view text) {
  Formatter formatter;
  std::string literal;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '%') {
      literal += text[i++];
      continue;
    }
    const size_t close = text.find('%', i + 1);
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError("unterminated % at offset " + std::to_string(i));
    }
    const std::string_view command = text.substr(i + 1, close - i - 1);
    i = close + 1;
    if (command.empty()) {  // %%
      literal += '%';
      continue;
    }
    Part part{Kind::kText, ""};
    if (command == "CLIENT_IP") {
      part.kind = Kind::kClientIp;
    } else if (command == "CLIENT_PORT") {
      part.kind = Kind::kClientPort;
    } else if (command == "PEER_IP") {
      part.kind = Kind::kPeerIp;
    } else if (command == "SNI") {
      part.kind = Kind::kSni;
    } else if (command == "ROUTE") {
      part.kind = Kind::kRoute;
    } else if (command == "LISTENER") {
      part.kind = Kind::kListener;
    } else if (command == "PROTOCOL") {
      part.kind = Kind::kProtocol;
    } else if (command.starts_with("REQ(") && command.ends_with(")") && command.size() > 5) {
      part.kind = Kind::kRequestHeader;
      const std::string_view name = command.substr(4, command.size() - 5);
      part.text = absl::AsciiStrToLower(absl::string_view(name.data(), name.size()));
      if (!validHeaderName(part.text) && !part.text.starts_with(':')) {
        return absl::InvalidArgumentError("%" + std::string(command) + "% names no valid header");
      }
    } else {
      return absl::InvalidArgumentError(
          "unknown %" + std::string(command) +
          "%; known: %CLIENT_IP% %CLIENT_PORT% %PEER_IP% %SNI% %ROUTE% %LISTENER% %PROTOCOL% "
          "%REQ(name)% %%");
    }
    if (!literal.empty()) formatter.parts_.push_back({Kind::kText, std::move(literal)});
    literal.clear();
    formatter.parts_.push_back(std::move(part));
  }
  if (!literal.empty()) formatter.parts_.push_back({Kind::kText, std::move(literal)});
  return formatter;
}

bool Formatter::readsRequestHeaders() const {
  for (const Part& part : parts_) {
    if (part.kind == Kind::kRequestHeader) return true;
  }
  return false;
}

std::string Formatter::format(const StreamInfo& info, const HeaderMap* request_headers) const {
  std::string out;
  const network::StreamInfo& connection = info.connection;
  for (const Part& part : parts_) {
    switch (part.kind) {
      case Kind::kText:
        out += part.text;
        break;
      case Kind::kClientIp:
        out += connection.real_client.ip();
        break;
      case Kind::kClientPort:
        out += std::to_string(connection.real_client.port());
        break;
      case Kind::kPeerIp:
        out += connection.downstream_remote.ip();
        break;
      case Kind::kSni:
        out += connection.requested_server_name;
        break;
      case Kind::kRoute:
        if (connection.route != nullptr) {
          out += connection.route->hostname.empty() ? "default" : connection.route->hostname;
        }
        break;
      case Kind::kListener:
        out += connection.listener_name;
        break;
      case Kind::kProtocol:
        out += info.protocol;
        break;
      case Kind::kRequestHeader:
        if (request_headers != nullptr) {
          if (const std::string* value = request_headers->get(part.text)) out += *value;
        }
        break;
    }
  }
  return out;
}

}  // namespace mcproxy::http
