//! A JSON client for the admin and agent API, authenticated with a bearer token: status and the
//! body as JSON (or as a JSON string when it is not JSON).

use serde_json::Value;

use super::TestApp;

pub struct Api<'a> {
    pub app: &'a TestApp,
    pub token: String,
}

impl Api<'_> {
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .app
            .http
            .request(method, format!("{}{path}", self.app.addr))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// `PUT /api/scripts/{name}` with the script text.
    pub async fn put_source(&self, name: &str, source: &str) -> (u16, Value) {
        self.send(
            reqwest::Method::PUT,
            &format!("/api/scripts/{name}"),
            Some(serde_json::json!({ "source": source })),
        )
        .await
    }
}
