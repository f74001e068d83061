//! A real HTTP/1.1 client (reqwest) for the management listener, and its answers read whole.

use std::net::SocketAddr;

use reqwest::Method;
use serde_json::Value;

pub struct Http {
    client: reqwest::Client,
    base: String,
}

/// One answer: status, headers and the body as text.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }

    /// The JSON error body's `field`, asserting the body has the error shape.
    pub fn error_field(&self) -> Option<String> {
        let body = self.json();
        assert!(body["error"].is_string(), "no error message: {}", self.body);
        body.get("field")
            .map(|field| field.as_str().unwrap().to_string())
    }
}

impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        Http {
            client: reqwest::Client::new(),
            base: format!("http://{addr}"),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, None).await
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> Reply {
        self.send(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, body: &str) -> Reply {
        self.send(Method::POST, path, None, Some(body.to_string()))
            .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::DELETE, path, token, None).await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("the HTTP listener answers");
        Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }
}
