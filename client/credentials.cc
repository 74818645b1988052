#include "client/credentials.h"

#include "common/files.h"

namespace voucherd {

std::expected<std::shared_ptr<grpc::ChannelCredentials>, std::string> client_credentials(
    const ClientTls& tls) {
  if (tls.ca_file.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  auto ca = read_file(tls.ca_file, "the CA file");
  if (!ca) return std::unexpected(ca.error());
  options.pem_root_certs = std::move(*ca);
  if (!tls.cert_file.empty()) {
    auto cert = read_file(tls.cert_file, "the client certificate");
    if (!cert) return std::unexpected(cert.error());
    auto key = read_file(tls.key_file, "the client key");
    if (!key) return std::unexpected(key.error());
    options.pem_cert_chain = std::move(*cert);
    options.pem_private_key = std::move(*key);
  }
  return grpc::SslCredentials(options);
}

}  // namespace voucherd
