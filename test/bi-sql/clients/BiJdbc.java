// Drives the BI SQL endpoint with the ClickHouse JDBC driver (com.clickhouse:clickhouse-jdbc,
// over HTTP: what DBeaver and Metabase use): connect, list the BI views through
// DatabaseMetaData, run a PreparedStatement with a parameter, and a statement that must be
// refused. Prints one JSON document for test/bi-sql to check. Run with Java's source
// launcher: java -cp '<jars>/*' BiJdbc.java URL USER PASSWORD EVENT
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

public class BiJdbc {
  static String q(String s) {
    if (s == null) return "null";
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      if (c == '"' || c == '\\') b.append('\\').append(c);
      else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
      else b.append(c);
    }
    return b.append('"').toString();
  }

  static String list(List<String> xs) {
    List<String> quoted = new ArrayList<>();
    for (String x : xs) quoted.add(q(x));
    return "[" + String.join(",", quoted) + "]";
  }

  public static void main(String[] args) throws Exception {
    String url = args[0], user = args[1], password = args[2], event = args[3];
    Properties props = new Properties();
    props.setProperty("user", user);
    props.setProperty("password", password);
    StringBuilder out = new StringBuilder("{");
    try (Connection conn = DriverManager.getConnection(url, props)) {
      DatabaseMetaData md = conn.getMetaData();
      out.append("\"product\":").append(q(md.getDatabaseProductName() + " " + md.getDatabaseProductVersion()));
      List<String> tables = new ArrayList<>();
      try (ResultSet rs = md.getTables(null, null, "%", null)) {
        while (rs.next()) tables.add(rs.getString("TABLE_NAME"));
      }
      out.append(",\"tables\":").append(list(tables));
      List<String> columns = new ArrayList<>();
      try (ResultSet rs = md.getColumns(null, null, "bi_conversions", "%")) {
        while (rs.next()) columns.add(rs.getString("COLUMN_NAME"));
      }
      out.append(",\"columns\":").append(list(columns));
      // what DBeaver reads on connecting: schemas and the type listing (a VALUES query)
      List<String> schemas = new ArrayList<>();
      try (ResultSet rs = md.getSchemas()) {
        while (rs.next()) schemas.add(rs.getString("TABLE_SCHEM"));
      }
      out.append(",\"schemas\":").append(list(schemas));
      int types = 0;
      try (ResultSet rs = md.getTypeInfo()) {
        while (rs.next()) types++;
      }
      out.append(",\"types\":").append(types);
      List<String> counts = new ArrayList<>();
      try (PreparedStatement ps = conn.prepareStatement(
          "SELECT workspace_id, event, count() AS n FROM bi_events WHERE event = ? GROUP BY workspace_id, event")) {
        ps.setString(1, event);
        try (ResultSet rs = ps.executeQuery()) {
          while (rs.next()) counts.add(rs.getString(1) + "/" + rs.getString(2) + "/" + rs.getLong(3));
        }
      }
      out.append(",\"counts\":").append(list(counts));
      List<String> workspaces = new ArrayList<>();
      try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT DISTINCT workspace_id FROM bi_events")) {
        while (rs.next()) workspaces.add(rs.getString(1));
      }
      out.append(",\"workspaces\":").append(list(workspaces));
      String refused = null;
      try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')")) {
        rs.next();
      } catch (SQLException e) {
        refused = e.getMessage();
      }
      out.append(",\"refused\":").append(q(refused));
    }
    System.out.println(out.append("}"));
  }
}
